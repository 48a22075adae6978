// Pure helpers of the portal: coordinates, ADQL building, CSV parsing, TAP answers.

const UNITS = { arcsec: 1 / 3600, arcmin: 1 / 60, deg: 1 };

/** Parse "ra dec" in degrees or sexagesimal ("hh:mm:ss.s ±dd:mm:ss"). Returns [ra, dec] in degrees. */
export function parsePosition(text) {
  const t = text.trim().replace(/,/g, " ");
  const parts = t.split(/\s+/).filter(Boolean);
  if (parts.length === 2 && parts.every((p) => /^[+-]?\d+(\.\d*)?([eE][+-]?\d+)?$/.test(p))) {
    return check(Number(parts[0]), Number(parts[1]));
  }
  const sexa = t.match(/^(\d{1,2})[:h ]\s*(\d{1,2})[:m ]\s*(\d{1,2}(?:\.\d*)?)s?\s+([+-]?)(\d{1,2})[:d° ]\s*(\d{1,2})[:' ]\s*(\d{1,2}(?:\.\d*)?)"?$/);
  if (sexa) {
    const ra = 15 * (Number(sexa[1]) + Number(sexa[2]) / 60 + Number(sexa[3]) / 3600);
    const sign = sexa[4] === "-" ? -1 : 1;
    const dec = sign * (Number(sexa[5]) + Number(sexa[6]) / 60 + Number(sexa[7]) / 3600);
    return check(ra, dec);
  }
  throw new Error(`cannot read a position from "${text}": give "ra dec" in degrees or "hh:mm:ss ±dd:mm:ss"`);
}

function check(ra, dec) {
  if (!(ra >= 0 && ra < 360)) throw new Error(`RA ${ra} is outside 0–360°`);
  if (!(dec >= -90 && dec <= 90)) throw new Error(`Dec ${dec} is outside −90–90°`);
  return [ra, dec];
}

/** Radius in degrees from a value and a unit (arcsec, arcmin, deg). */
export function radiusDeg(value, unit) {
  const v = Number(value);
  if (!(v > 0)) throw new Error("the radius must be a positive number");
  return v * UNITS[unit];
}

/** Polygon vertices from "ra1 dec1, ra2 dec2, …" (at least 3). */
export function parsePolygon(text) {
  const pts = text.split(/[;,\n]/).map((s) => s.trim()).filter(Boolean).map((s) => {
    const p = s.split(/\s+/).map(Number);
    if (p.length !== 2 || p.some((x) => !Number.isFinite(x))) throw new Error(`"${s}" is not a vertex "ra dec"`);
    return check(p[0], p[1]);
  });
  if (pts.length < 3) throw new Error("a polygon needs at least 3 vertices");
  return pts;
}

/** Identifiers from a list separated by commas, spaces or lines. */
export function parseIds(text) {
  const ids = text.split(/[\s,;]+/).filter(Boolean);
  if (!ids.length) throw new Error("give at least one identifier");
  for (const id of ids) if (!/^-?\d+$/.test(id)) throw new Error(`"${id}" is not an integer identifier`);
  return ids;
}

const fmt = (x) => String(Number(x.toFixed(8)));

/** The ADQL of a form search. */
export function buildAdql(s) {
  const cols = s.columns.length ? s.columns.join(", ") : "*";
  const where = [];
  if (s.mode === "cone") {
    const [ra, dec] = parsePosition(s.position);
    const r = radiusDeg(s.radius, s.radiusUnit);
    where.push(`CONTAINS(POINT('ICRS', ${s.raCol}, ${s.decCol}), CIRCLE('ICRS', ${fmt(ra)}, ${fmt(dec)}, ${fmt(r)})) = 1`);
  } else if (s.mode === "polygon") {
    const pts = parsePolygon(s.polygon).flat().map(fmt).join(", ");
    where.push(`CONTAINS(POINT('ICRS', ${s.raCol}, ${s.decCol}), POLYGON('ICRS', ${pts})) = 1`);
  } else if (s.mode === "ids") {
    where.push(`${s.idCol} IN (${parseIds(s.ids).join(", ")})`);
  }
  if (s.constraints.trim()) where.push(`(${s.constraints.trim()})`);
  const top = s.limit ? `TOP ${Number(s.limit)} ` : "";
  return `SELECT ${top}${cols}\nFROM ${s.table}` + (where.length ? `\nWHERE ${where.join("\n  AND ")}` : "");
}

/** Parse CSV text into columns: {names, columns, numeric}; numeric columns are Float64Arrays. */
export function parseCsv(text) {
  const rows = [];
  let row = [], field = "", i = 0, quoted = false;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
        quoted = false; i++; continue;
      }
      field += c; i++; continue;
    }
    if (c === '"') { quoted = true; i++; continue; }
    if (c === ",") { row.push(field); field = ""; i++; continue; }
    if (c === "\n" || c === "\r") {
      row.push(field); field = ""; rows.push(row); row = [];
      if (c === "\r" && text[i + 1] === "\n") i++;
      i++; continue;
    }
    // Fast path: take a run of plain characters at once.
    let j = i + 1;
    while (j < n) { const d = text[j]; if (d === "," || d === "\n" || d === "\r" || d === '"') break; j++; }
    field += text.slice(i, j); i = j;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  const names = rows.shift() || [];
  const columns = names.map((_, k) => rows.map((r) => r[k] ?? ""));
  const numeric = columns.map((col) => col.every((v) => v === "" || v === "NaN" || !Number.isNaN(Number(v))) && col.some((v) => v !== ""));
  const out = columns.map((col, k) => {
    if (!numeric[k]) return col;
    const a = new Float64Array(col.length);
    for (let r = 0; r < col.length; r++) a[r] = col[r] === "" ? NaN : Number(col[r]);
    return a;
  });
  return { names, columns: out, numeric, length: rows.length, text: columns };
}

/** The error text of a TAP error VOTable (INFO name=QUERY_STATUS value=ERROR), else the body. */
export function tapErrorText(body) {
  try {
    const doc = new DOMParser().parseFromString(body, "application/xml");
    for (const info of doc.getElementsByTagName("INFO")) {
      if (info.getAttribute("name") === "QUERY_STATUS" && info.getAttribute("value") === "ERROR") {
        return info.textContent.trim();
      }
    }
  } catch (e) { /* not XML */ }
  return body.trim();
}

/** Row order matching filters, then sorted. */
export function rowOrder(data, filters, sort) {
  const tests = [];
  for (const [k, expr] of Object.entries(filters)) {
    const e = (expr || "").trim();
    if (!e) continue;
    const col = data.columns[k];
    if (data.numeric[k]) {
      let m;
      if ((m = e.match(/^(-?[\d.eE+-]+)\s*\.\.\s*(-?[\d.eE+-]+)$/))) {
        const lo = Number(m[1]), hi = Number(m[2]);
        tests.push((r) => col[r] >= lo && col[r] <= hi);
      } else if ((m = e.match(/^(<=|>=|<|>|=|!=)\s*(-?[\d.eE+-]+)$/))) {
        const v = Number(m[2]);
        const op = { "<": (x) => x < v, ">": (x) => x > v, "<=": (x) => x <= v, ">=": (x) => x >= v, "=": (x) => x === v, "!=": (x) => x !== v }[m[1]];
        tests.push((r) => op(col[r]));
      } else if (!Number.isNaN(Number(e))) {
        const v = Number(e);
        tests.push((r) => col[r] === v);
      }
    } else {
      const needle = e.toLowerCase();
      tests.push((r) => col[r].toLowerCase().includes(needle));
    }
  }
  let order = [];
  for (let r = 0; r < data.length; r++) if (tests.every((t) => t(r))) order.push(r);
  order = Uint32Array.from(order);
  if (sort) {
    const col = data.columns[sort.col];
    const dir = sort.desc ? -1 : 1;
    if (data.numeric[sort.col]) {
      // NaN last whatever the direction.
      order.sort((a, b) => {
        const x = col[a], y = col[b];
        if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : 1;
        if (Number.isNaN(y)) return -1;
        return (x - y) * dir;
      });
    } else {
      order.sort((a, b) => col[a].localeCompare(col[b]) * dir);
    }
  }
  return order;
}
