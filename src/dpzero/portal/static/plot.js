// Plots drawn on a canvas: scatter (density map above a threshold), histogram, axes.

const M = { left: 64, right: 16, top: 16, bottom: 44 };

function niceTicks(lo, hi, count = 6) {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= step0);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function extent(values, order) {
  let lo = Infinity, hi = -Infinity;
  for (const r of order) { const v = values[r]; if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) return [lo - 0.5, hi + 0.5];
  const pad = (hi - lo) * 0.02;
  return [lo - pad, hi + pad];
}

function frame(ctx, w, h, xr, yr, o) {
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#333"; ctx.fillStyle = "#333"; ctx.font = "12px system-ui, sans-serif";
  const pw = w - M.left - M.right, ph = h - M.top - M.bottom;
  ctx.strokeRect(M.left, M.top, pw, ph);
  const sx = (v) => M.left + (o.invertX ? (xr[1] - v) : (v - xr[0])) / (xr[1] - xr[0]) * pw;
  const sy = (v) => M.top + (o.invertY ? (v - yr[0]) : (yr[1] - v)) / (yr[1] - yr[0]) * ph;
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (const t of niceTicks(xr[0], xr[1])) {
    const x = sx(t); ctx.beginPath(); ctx.moveTo(x, M.top + ph); ctx.lineTo(x, M.top + ph + 5); ctx.stroke();
    ctx.fillText(String(t), x, M.top + ph + 7);
  }
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const t of niceTicks(yr[0], yr[1])) {
    const y = sy(t); ctx.beginPath(); ctx.moveTo(M.left - 5, y); ctx.lineTo(M.left, y); ctx.stroke();
    ctx.fillText(String(t), M.left - 7, y);
  }
  ctx.textAlign = "center"; ctx.textBaseline = "bottom";
  ctx.fillText(o.xlabel || "", M.left + pw / 2, h - 2);
  ctx.save(); ctx.translate(12, M.top + ph / 2); ctx.rotate(-Math.PI / 2); ctx.textBaseline = "middle";
  ctx.fillText(o.ylabel || "", 0, 0); ctx.restore();
  return { sx, sy, pw, ph };
}

/**
 * Ranges for a sky plot with equal angular scales on both axes (RA compressed by cos Dec).
 */
export function skyRanges(ras, decs, order, width, height) {
  const xr = extent(ras, order), yr = extent(decs, order);
  const pw = width - M.left - M.right, ph = height - M.top - M.bottom;
  const cosd = Math.max(0.05, Math.cos(((yr[0] + yr[1]) / 2) * Math.PI / 180));
  const sx = (xr[1] - xr[0]) * cosd / pw, sy = (yr[1] - yr[0]) / ph;  // degrees per pixel
  const s = Math.max(sx, sy);
  const cx = (xr[0] + xr[1]) / 2, cy = (yr[0] + yr[1]) / 2;
  return {
    xRange: [cx - (s * pw) / cosd / 2, cx + (s * pw) / cosd / 2],
    yRange: [cy - (s * ph) / 2, cy + (s * ph) / 2],
  };
}

/**
 * Scatter plot of rows `order` of xs/ys; a density map when there are more than
 * `threshold` points. Rows in `highlight` are drawn on top in orange.
 * Returns "scatter" or "density".
 */
export function drawScatter(canvas, xs, ys, order, o) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  const xr = o.xRange || extent(xs, order), yr = o.yRange || extent(ys, order);
  const { sx, sy, pw, ph } = frame(ctx, w, h, xr, yr, o);
  ctx.save(); ctx.beginPath(); ctx.rect(M.left, M.top, pw, ph); ctx.clip();
  let kind = "scatter";
  if (order.length > o.threshold) {
    kind = "density";
    const cell = 3, nx = Math.ceil(pw / cell), ny = Math.ceil(ph / cell);
    const grid = new Uint32Array(nx * ny);
    let max = 0;
    for (const r of order) {
      const x = sx(xs[r]), y = sy(ys[r]);
      if (!(x >= M.left && x < M.left + pw && y >= M.top && y < M.top + ph)) continue;
      const k = Math.floor((y - M.top) / cell) * nx + Math.floor((x - M.left) / cell);
      const c = ++grid[k]; if (c > max) max = c;
    }
    const lmax = Math.log1p(max);
    for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
      const c = grid[j * nx + i]; if (!c) continue;
      const f = Math.log1p(c) / lmax;
      ctx.fillStyle = `rgb(${Math.round(255 * (1 - f) * 0.9)}, ${Math.round(60 + 120 * (1 - f))}, ${Math.round(120 + 135 * f)})`;
      ctx.fillRect(M.left + i * cell, M.top + j * cell, cell, cell);
    }
  } else {
    ctx.fillStyle = "rgba(11, 95, 165, 0.6)";
    for (const r of order) {
      const x = sx(xs[r]), y = sy(ys[r]);
      if (Number.isFinite(x) && Number.isFinite(y)) ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
    }
  }
  ctx.strokeStyle = "#e06000"; ctx.lineWidth = 2;
  for (const r of o.highlight || []) {
    const x = sx(xs[r]), y = sy(ys[r]);
    if (Number.isFinite(x) && Number.isFinite(y)) { ctx.beginPath(); ctx.arc(x, y, 5, 0, 2 * Math.PI); ctx.stroke(); }
  }
  ctx.restore();
  canvas.dataset.kind = kind;
  canvas.dataset.points = String(order.length);
  return kind;
}

/** Histogram of rows `order` of values; highlighted rows as a second, orange histogram. */
export function drawHistogram(canvas, values, order, o) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  const xr = extent(values, order);
  const bins = o.bins || 40;
  const counts = new Uint32Array(bins), marked = new Uint32Array(bins);
  const bin = (v) => Math.min(bins - 1, Math.floor((v - xr[0]) / (xr[1] - xr[0]) * bins));
  for (const r of order) { const v = values[r]; if (Number.isFinite(v)) counts[bin(v)]++; }
  for (const r of o.highlight || []) { const v = values[r]; if (Number.isFinite(v)) marked[bin(v)]++; }
  const top = Math.max(1, ...counts) * 1.05;
  const { sx, sy } = frame(ctx, w, h, xr, [0, top], { ...o, ylabel: "count" });
  const bw = (xr[1] - xr[0]) / bins;
  for (const [arr, colour] of [[counts, "rgba(11, 95, 165, 0.7)"], [marked, "#e06000"]]) {
    ctx.fillStyle = colour;
    for (let b = 0; b < bins; b++) {
      if (!arr[b]) continue;
      const x0 = sx(xr[0] + b * bw), x1 = sx(xr[0] + (b + 1) * bw);
      ctx.fillRect(Math.min(x0, x1), sy(arr[b]), Math.abs(x1 - x0) - 1, sy(0) - sy(arr[b]));
    }
  }
  canvas.dataset.kind = "histogram";
  canvas.dataset.points = String(order.length);
}
