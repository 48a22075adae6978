// The dpzero portal: search over TAP, a results table, plots and async jobs.
import { html, render, useState, useEffect, useMemo, useRef } from "./vendor/htm-preact-standalone.module.js";
import { buildAdql, parseCsv, rowOrder, tapErrorText } from "./data.js";
import { drawHistogram, drawScatter, skyRanges } from "./plot.js";

const CONFIG = JSON.parse(document.getElementById("portal-config").textContent);
const TAP = CONFIG.tapUrl;
let CSRF = "";

async function tapSync(query, format = "csv", maxrec = CONFIG.maxRows) {
  const body = new URLSearchParams({ REQUEST: "doQuery", LANG: "ADQL", QUERY: query, FORMAT: format, MAXREC: String(maxrec) });
  const r = await fetch(`${TAP}/sync`, { method: "POST", body, headers: { "X-CSRF-Token": CSRF } });
  const text = await r.text();
  if (!r.ok) throw new Error(tapErrorText(text) || `HTTP ${r.status}`);
  return text;
}

async function tapPost(path, params) {
  const r = await fetch(`${TAP}${path}`, { method: "POST", body: new URLSearchParams(params), headers: { "X-CSRF-Token": CSRF } });
  if (!r.ok) throw new Error(tapErrorText(await r.text()));
  return r;
}

const downloadUrl = (query, format) =>
  `${TAP}/sync?` + new URLSearchParams({ REQUEST: "doQuery", LANG: "ADQL", QUERY: query, FORMAT: format, MAXREC: String(CONFIG.maxRows) });

async function loadSchema() {
  const text = await tapSync(
    "SELECT table_name, column_name, description, unit, ucd, datatype, principal FROM TAP_SCHEMA.columns " +
    "WHERE table_name NOT LIKE 'TAP_SCHEMA.%' ORDER BY table_name, column_index", "csv", 100000);
  const d = parseCsv(text);
  const idx = Object.fromEntries(d.names.map((n, k) => [n, k]));
  const tables = {};
  for (let r = 0; r < d.length; r++) {
    const t = d.text[idx.table_name][r];
    (tables[t] ||= []).push({
      name: d.text[idx.column_name][r], description: d.text[idx.description][r], unit: d.text[idx.unit][r],
      ucd: d.text[idx.ucd][r], datatype: d.text[idx.datatype][r], principal: d.text[idx.principal][r] === "1",
    });
  }
  return tables;
}

function positionColumns(cols) {
  const by = (re, names) => (cols.find((c) => re.test(c.ucd)) || cols.find((c) => names.includes(c.name)) || {}).name;
  return {
    ra: by(/^pos\.eq\.ra;meta\.main/, ["ra", "coord_ra"]),
    dec: by(/^pos\.eq\.dec;meta\.main/, ["dec", "coord_dec"]),
    id: by(/^meta\.id;meta\.main/, ["objectId", "id"]),
  };
}

function defaultColumns(cols) {
  const principal = cols.filter((c) => c.principal).map((c) => c.name);
  if (principal.length) return principal.slice(0, 12);
  const pos = positionColumns(cols);
  const mags = cols.filter((c) => /^mag_[ugrizy](_cModel)?$/.test(c.name)).map((c) => c.name);
  return [...new Set([pos.id, pos.ra, pos.dec, ...mags].filter(Boolean))].slice(0, 12);
}

function Search({ tables, onRun, onAsync, busy }) {
  const names = Object.keys(tables);
  const first = names.find((n) => n.endsWith(".object")) || names[0];
  const [s, setS] = useState({
    table: first, mode: "cone", position: "62.0 -37.0", radius: "5", radiusUnit: "arcmin",
    polygon: "", ids: "", constraints: "", limit: "", columns: defaultColumns(tables[first] || []), adql: "",
  });
  const cols = tables[s.table] || [];
  const pos = positionColumns(cols);
  const set = (patch) => setS({ ...s, ...patch });
  let adql = s.adql, problem = "";
  if (s.mode !== "adql") {
    try { adql = buildAdql({ ...s, raCol: pos.ra, decCol: pos.dec, idCol: pos.id }); } catch (e) { problem = e.message; adql = ""; }
  }
  const toggle = (name) => set({ columns: s.columns.includes(name) ? s.columns.filter((c) => c !== name) : [...s.columns, name] });
  const mode = (m, label) => html`<button type="button" class=${s.mode === m ? "on" : ""} onClick=${() => set({ mode: m, adql: m === "adql" && !s.adql ? adql : s.adql })}>${label}</button>`;
  return html`<form class="panel" id="search" onSubmit=${(e) => { e.preventDefault(); if (adql) onRun(adql); }}>
    <h2>Search</h2>
    <label>Table <select name="table" value=${s.table} onChange=${(e) => set({ table: e.target.value, columns: defaultColumns(tables[e.target.value] || []) })}>
      ${names.map((n) => html`<option value=${n}>${n}</option>`)}</select></label>
    <div class="tabs">${mode("cone", "Cone")}${mode("polygon", "Polygon")}${mode("ids", "ID list")}${mode("all", "Whole table")}${mode("adql", "ADQL")}</div>
    ${s.mode === "cone" && html`
      <label>Position (RA Dec: degrees, or hh:mm:ss ±dd:mm:ss) <input name="position" value=${s.position} onInput=${(e) => set({ position: e.target.value })}/></label>
      <div class="row"><label>Radius <input name="radius" type="number" step="any" min="0" value=${s.radius} onInput=${(e) => set({ radius: e.target.value })}/></label>
        <label>Unit <select name="radius-unit" value=${s.radiusUnit} onChange=${(e) => set({ radiusUnit: e.target.value })}>
          <option value="arcsec">arcsec</option><option value="arcmin">arcmin</option><option value="deg">deg</option></select></label></div>`}
    ${s.mode === "polygon" && html`<label>Vertices (RA Dec in degrees, comma separated) <textarea name="polygon" value=${s.polygon} placeholder="61.8 -37.2, 62.2 -37.2, 62.2 -36.8, 61.8 -36.8" onInput=${(e) => set({ polygon: e.target.value })}/></label>`}
    ${s.mode === "ids" && html`<label>${pos.id} list <textarea name="ids" value=${s.ids} onInput=${(e) => set({ ids: e.target.value })}/></label>`}
    ${s.mode !== "adql" && html`
      <details open><summary>Columns (${s.columns.length || "all"})</summary>
        <div class="columns">${cols.map((c) => html`<label title=${c.description}><input type="checkbox" checked=${s.columns.includes(c.name)} onChange=${() => toggle(c.name)}/> ${c.name} ${c.unit && html`<span class="muted">[${c.unit}]</span>`} <span class="desc">${c.description}</span></label>`)}</div>
      </details>
      <label>Constraints (ADQL, e.g. <code>${"mag_i_cModel < 24"}</code>) <input name="constraints" value=${s.constraints} onInput=${(e) => set({ constraints: e.target.value })}/></label>
      <label>Row limit <input name="limit" type="number" min="1" value=${s.limit} placeholder=${`${CONFIG.maxRows}`} onInput=${(e) => set({ limit: e.target.value })}/></label>`}
    ${problem && html`<p class="error">${problem}</p>`}
    <label>ADQL sent to TAP ${s.mode !== "adql" && html`<span class="muted">(switch to ADQL to edit)</span>`}
      <textarea class="adql" name="adql" readOnly=${s.mode !== "adql"} value=${adql} onInput=${(e) => set({ adql: e.target.value })}/></label>
    <div class="row"><button class="primary" type="submit" disabled=${busy || !adql}>Search</button>
      <button type="button" disabled=${!adql} onClick=${() => onAsync(adql)}>Submit as async job</button></div>
  </form>`;
}

function ResultTable({ data, meta, order, page, setPage, sort, setSort, filters, setFilters, selected, toggleRow }) {
  const pages = Math.max(1, Math.ceil(order.length / CONFIG.pageRows));
  const start = page * CONFIG.pageRows;
  const rows = order.subarray(start, start + CONFIG.pageRows);
  return html`<div>
    <div class="pager"><button onClick=${() => setPage(0)} disabled=${page === 0}>«</button>
      <button name="prev" onClick=${() => setPage(page - 1)} disabled=${page === 0}>‹ Prev</button>
      <span id="page-info">Page ${page + 1} of ${pages} · rows ${order.length ? start + 1 : 0}–${start + rows.length} of ${order.length}${order.length !== data.length ? ` (filtered from ${data.length})` : ""}</span>
      <button name="next" onClick=${() => setPage(page + 1)} disabled=${page >= pages - 1}>Next ›</button>
      <button onClick=${() => setPage(pages - 1)} disabled=${page >= pages - 1}>»</button>
      <span class="muted">${selected.size} selected (click rows)</span></div>
    <div class="tablewrap"><table class="grid" id="results"><thead><tr>${data.names.map((n, k) => html`
      <th title=${meta[n]?.description || ""} data-col=${n} onClick=${() => setSort({ col: k, desc: sort && sort.col === k ? !sort.desc : false })}>
        ${n}${sort && sort.col === k ? (sort.desc ? " ▼" : " ▲") : ""}<span class="unit">${meta[n]?.unit || "\u00a0"}</span></th>`)}</tr>
      <tr>${data.names.map((n, k) => html`<th><input class="filter" name=${`filter-${n}`} placeholder=${data.numeric[k] ? "<, >, a..b" : "contains"} value=${filters[k] || ""} onChange=${(e) => setFilters({ ...filters, [k]: e.target.value })}/></th>`)}</tr></thead>
      <tbody>${Array.from(rows, (r) => html`<tr key=${r} class=${selected.has(r) ? "selected" : ""} onClick=${() => toggleRow(r)}>
        ${data.text.map((col, k) => html`<td class=${data.numeric[k] ? "" : "text"}>${col[r]}</td>`)}</tr>`)}</tbody></table></div>
  </div>`;
}

function Plot({ data, order, selected }) {
  const num = data.names.filter((_, k) => data.numeric[k]);
  const col = (name) => data.columns[data.names.indexOf(name)];
  const raName = num.find((n) => /^(ra|coord_ra)$/.test(n)), decName = num.find((n) => /^(dec|coord_dec)$/.test(n));
  const bands = ["u", "g", "r", "i", "z", "y"].filter((b) => num.some((n) => new RegExp(`^mag_${b}(_cModel)?$`).test(n)));
  const magOf = (b) => num.find((n) => new RegExp(`^mag_${b}(_cModel)?$`).test(n));
  const [kind, setKind] = useState(raName && decName ? "sky" : "scatter");
  const [x, setX] = useState(num[0]);
  const [y, setY] = useState(num[1] || num[0]);
  const [cmd, setCmd] = useState({ blue: bands.includes("g") ? "g" : bands[0], red: bands.includes("r") ? "r" : bands[1], mag: bands.includes("r") ? "r" : bands[1] });
  const canvas = useRef(null);
  const [info, setInfo] = useState("");
  useEffect(() => {
    const c = canvas.current; if (!c || !order.length) return;
    const t0 = performance.now();
    const highlight = [...selected];
    let drawn = kind;
    if (kind === "histogram") drawHistogram(c, col(x), order, { xlabel: x, highlight });
    else if (kind === "sky") drawn = drawScatter(c, col(raName), col(decName), order, { ...skyRanges(col(raName), col(decName), order, c.width, c.height), xlabel: `${raName} [deg]`, ylabel: `${decName} [deg]`, invertX: true, threshold: CONFIG.densityThreshold, highlight });
    else if (kind === "cmd") {
      const b = col(magOf(cmd.blue)), rr = col(magOf(cmd.red));
      const colour = new Float64Array(data.length);
      for (let i = 0; i < data.length; i++) colour[i] = b[i] - rr[i];
      drawn = drawScatter(c, colour, col(magOf(cmd.mag)), order, { xlabel: `${cmd.blue} − ${cmd.red}`, ylabel: cmd.mag, invertY: true, threshold: CONFIG.densityThreshold, highlight });
    } else drawn = drawScatter(c, col(x), col(y), order, { xlabel: x, ylabel: y, threshold: CONFIG.densityThreshold, highlight });
    setInfo(`${order.length} rows as ${drawn === "density" ? "a density map" : drawn} in ${(performance.now() - t0).toFixed(0)} ms`);
  }, [data, order, selected, kind, x, y, cmd]);
  const pick = (value, onChange, name) => html`<select name=${name} value=${value} onChange=${(e) => onChange(e.target.value)}>${num.map((n) => html`<option value=${n}>${n}</option>`)}</select>`;
  const band = (value, key) => html`<select name=${`cmd-${key}`} value=${value} onChange=${(e) => setCmd({ ...cmd, [key]: e.target.value })}>${bands.map((b) => html`<option value=${b}>${b}</option>`)}</select>`;
  return html`<div id="plot-panel">
    <div class="tabs">${[["sky", "Sky", raName && decName], ["scatter", "Scatter", num.length], ["histogram", "Histogram", num.length], ["cmd", "Colour–magnitude", bands.length >= 2]]
      .filter((t) => t[2]).map(([k, label]) => html`<button class=${kind === k ? "on" : ""} name=${`plot-${k}`} onClick=${() => setKind(k)}>${label}</button>`)}</div>
    <div class="row">${kind === "scatter" && html`<label>x ${pick(x, setX, "plot-x")}</label><label>y ${pick(y, setY, "plot-y")}</label>`}
      ${kind === "histogram" && html`<label>column ${pick(x, setX, "plot-x")}</label>`}
      ${kind === "cmd" && html`<label>colour ${band(cmd.blue, "blue")}</label><label>minus ${band(cmd.red, "red")}</label><label>magnitude ${band(cmd.mag, "mag")}</label>`}</div>
    <canvas class="plot" id="plot" width="760" height="520" ref=${canvas}></canvas>
    <p class="status" id="plot-info">${info}</p></div>`;
}

function Jobs({ refreshKey, onLoad }) {
  const [jobs, setJobs] = useState([]);
  const [error, setError] = useState("");
  async function refresh() {
    try {
      const r = await fetch(`${TAP}/async`);
      const doc = new DOMParser().parseFromString(await r.text(), "application/xml");
      const refs = [...doc.getElementsByTagNameNS("*", "jobref")].map((j) => j.getAttribute("id"));
      const out = [];
      for (const id of refs) {
        const d = new DOMParser().parseFromString(await (await fetch(`${TAP}/async/${id}`)).text(), "application/xml");
        const get = (tag) => d.getElementsByTagNameNS("*", tag)[0]?.textContent || "";
        const query = [...d.getElementsByTagNameNS("*", "parameter")].find((p) => p.getAttribute("id").toLowerCase() === "query")?.textContent || "";
        out.push({ id, phase: get("phase"), created: get("creationTime"), message: get("message"), query });
      }
      setJobs(out); setError("");
    } catch (e) { setError(String(e.message || e)); }
  }
  useEffect(() => { refresh(); const t = setInterval(refresh, 2000); return () => clearInterval(t); }, [refreshKey]);
  const abort = async (id) => { try { await tapPost(`/async/${id}/phase`, { PHASE: "ABORT" }); } catch (e) { setError(e.message); } refresh(); };
  return html`<div id="jobs-panel"><p class="muted">Your async TAP jobs (refreshed every 2 s).</p>
    ${error && html`<p class="error">${error}</p>`}
    <div class="tablewrap"><table class="grid jobs" id="jobs"><thead><tr><th>Job</th><th>Phase</th><th>Created</th><th>Query</th><th>Error</th><th></th></tr></thead>
    <tbody>${jobs.map((j) => html`<tr data-job=${j.id}><td class="text">${j.id}</td><td class=${`text phase-${j.phase}`}>${j.phase}</td><td class="text">${j.created}</td>
      <td class="text" title=${j.query}>${j.query.slice(0, 60)}</td><td class="text error">${j.message}</td>
      <td class="text">${["PENDING", "QUEUED", "EXECUTING"].includes(j.phase) && html`<button onClick=${() => abort(j.id)}>Abort</button>`}
        ${j.phase === "COMPLETED" && html`<button onClick=${() => onLoad(j.id)}>Show</button> <a href=${`${TAP}/async/${j.id}/results/result`}>download</a>`}</td></tr>`)}</tbody></table></div></div>`;
}

function App() {
  const [me, setMe] = useState(null);
  const [tables, setTables] = useState(null);
  const [error, setError] = useState("");
  const [status, setStatus] = useState("");
  const [busy, setBusy] = useState(false);
  const [query, setQuery] = useState("");
  const [data, setData] = useState(null);
  const [tab, setTab] = useState("results");
  const [page, setPage] = useState(0);
  const [sort, setSort] = useState(null);
  const [filters, setFilters] = useState({});
  const [selected, setSelected] = useState(new Set());
  const [jobsKey, setJobsKey] = useState(0);
  useEffect(() => {
    (async () => {
      try {
        const who = await (await fetch("/auth/api/user")).json();
        CSRF = who.csrf || ""; setMe(who);
        setTables(await loadSchema());
      } catch (e) { setError(`cannot read the table list: ${e.message}`); }
    })();
  }, []);
  const meta = useMemo(() => {
    const m = {};
    if (tables) for (const cols of Object.values(tables)) for (const c of cols) m[c.name] ||= c;
    return m;
  }, [tables]);
  const order = useMemo(() => (data ? rowOrder(data, filters, sort) : new Uint32Array()), [data, filters, sort]);
  function show(text, q, t0) {
    const d = parseCsv(text);
    setData(d); setPage(0); setSort(null); setFilters({}); setSelected(new Set()); setQuery(q); setTab("results");
    const ms = performance.now() - t0;
    setStatus(`${d.length} rows${d.length >= CONFIG.maxRows ? " (limit reached: narrow the search)" : ""} in ${(ms / 1000).toFixed(2)} s`);
    document.body.dataset.lastSearchMs = ms.toFixed(1);
  }
  async function run(q) {
    setBusy(true); setError(""); setStatus("Searching…");
    const t0 = performance.now();
    try { show(await tapSync(q), q, t0); } catch (e) { setError(e.message); setStatus(""); } finally { setBusy(false); }
  }
  async function submitAsync(q) {
    setError("");
    try { await tapPost("/async", { LANG: "ADQL", QUERY: q, FORMAT: "csv", PHASE: "RUN" }); setJobsKey(jobsKey + 1); setTab("jobs"); }
    catch (e) { setError(e.message); }
  }
  async function loadJob(id) {
    const t0 = performance.now();
    const r = await fetch(`${TAP}/async/${id}/results/result`);
    if (!r.ok) { setError(await r.text()); return; }
    show(await r.text(), `(async job ${id})`, t0);
  }
  const toggleRow = (r) => { const s = new Set(selected); s.has(r) ? s.delete(r) : s.add(r); setSelected(s); };
  return html`<header class="bar"><b>dpzero</b> <a href="/portal/">Portal</a> <a href="/api/tap/tables">TAP tables</a>
      ${me?.auth_enabled && html`<a href="/auth/tokens">Tokens</a>`}
      <span class="who">${me ? me.username : ""}${me?.auth_enabled ? html` · <a href="/logout">log out</a>` : ""}</span></header>
    <div class="layout">
      <div>${tables ? html`<${Search} tables=${tables} onRun=${run} onAsync=${submitAsync} busy=${busy}/>` : html`<p class="panel">${error ? "" : "Reading TAP_SCHEMA…"}</p>`}</div>
      <div class="panel">
        <div class="tabs"><button name="tab-results" class=${tab === "results" ? "on" : ""} onClick=${() => setTab("results")}>Results</button>
          <button name="tab-plot" class=${tab === "plot" ? "on" : ""} onClick=${() => setTab("plot")} disabled=${!data}>Plot</button>
          <button name="tab-jobs" class=${tab === "jobs" ? "on" : ""} onClick=${() => setTab("jobs")}>Async jobs</button></div>
        ${error && html`<pre class="error" id="error" role="alert">${error}</pre>`}
        <p class="status" id="status">${status}</p>
        ${data && tab !== "jobs" && html`<p class="downloads">Download: <a download="result.xml" href=${downloadUrl(query, "votable")}>VOTable</a>
          <a download="result.csv" href=${downloadUrl(query, "csv")}>CSV</a> <a download="result.parquet" href=${downloadUrl(query, "parquet")}>Parquet</a></p>`}
        ${data && tab === "results" && html`<${ResultTable} data=${data} meta=${meta} order=${order} page=${page} setPage=${setPage} sort=${sort}
            setSort=${(s) => { setSort(s); setPage(0); }} filters=${filters} setFilters=${(f) => { setFilters(f); setPage(0); }} selected=${selected} toggleRow=${toggleRow}/>`}
        ${data && tab === "plot" && html`<${Plot} data=${data} order=${order} selected=${selected}/>`}
        ${tab === "jobs" && html`<${Jobs} refreshKey=${jobsKey} onLoad=${loadJob}/>`}
        ${!data && tab === "results" && !error && html`<p class="muted">Choose a table and a search on the left; results appear here.</p>`}
      </div></div>`;
}

render(html`<${App}/>`, document.getElementById("app"));
