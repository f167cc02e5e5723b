// The map page: every neuron as a point drawn by WebGL straight from typed arrays, coloured by
// layer or cluster, with wheel zoom, drag pan, a hover card, click-through to the neuron and
// search highlighting. Cluster labels come in two levels: the coarse clusters' zoomed out, the
// fine clusters' (those in view, largest first) once zoomed in; a label that would overlap a
// larger cluster's is left out, so labels never overlap.
//
// Why not a charting library: at GPT-2 XL's size (307,200 points) plotly's scattergl took
// seconds to parse its own 4.6 MB script and redrew the whole scene for every label change;
// here a pan or zoom is a few draw calls over buffers uploaded once. The clusters come first
// (/api/map/clusters, small JSON) and the points as 12-byte rows (/api/map/points/compact,
// see read/mapbin.py) that WebGL reads in place, never parsed.
//
// Level of detail: software-rendered WebGL (no GPU) costs about the same per point submitted,
// on screen or clipped, so a frame submits only the points of the map's tiles in view, and
// when more than BUDGET are in view, the same share of each tile (each tile's points come in
// a random order, so a prefix is an even sample). Zoomed in, every point in view is drawn;
// only drawn points answer the hover and the click.
//
// window.naMap exposes the view for tests and benchmarks: view(), setView(), reset(),
// toScreen(id), colourCount(), highlighted(), drawn(), count(keep).
(function () {
  "use strict";
  const $ = (s) => document.querySelector(s);
  const div = $("#map"), tip = $("#tip"), wrap = $("#map-wrap");
  const dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
    "#ff9da7", "#9c755f", "#86bcb6", "#d37295", "#8cd17d", "#b6992d", "#499894", "#f1ce63", "#a0cbe8"];
  const NOISE = [154, 161, 173];
  const FINE_BELOW = 0.25;  // show fine labels once the view covers less than this share of the map
  const MAX_FINE_LABELS = 60;
  const HOVER_PX = 8;
  const BUDGET = 60000;  // points submitted per frame at most (see above)
  const NONE = -2147483648;  // no cluster (JSON's null)
  // Viridis-like, without the end that vanishes into the page background of each theme.
  const LAYER_SCALE = dark
    ? [[0, "#5b7cfa"], [0.35, "#2fc6c0"], [0.7, "#8fdc5a"], [1, "#ffd166"]]
    : [[0, "#3b0f70"], [0.3, "#3e4a89"], [0.55, "#21918c"], [0.8, "#5ec962"], [1, "#c99400"]];
  const times = (window.naMapTimes = { start: performance.now() });

  let P = null, count = 0, fine = [], coarse = [], fineById = new Map(), coarseById = new Map();
  let colourBy = "layer", level = "", shownLevel = "", home = null, view = null;
  let index = null, summaries = new Map(), matches = [], hovered = -1;
  let gl = null, prog = null, buffers = {}, ctx2d = null, canvas = null, labels = null, pending = false;

  function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c])); }
  function rgbOf(hex) { const v = parseInt(hex.slice(1), 16); return [(v >> 16) & 255, (v >> 8) & 255, v & 255]; }
  function hsl(h, s, l) {  // → [r, g, b] 0..255
    const a = s * Math.min(l, 1 - l), f = (n) => { const k = (n + h / 30) % 12; return l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1)); };
    return [f(0), f(8), f(4)].map((v) => Math.round(v * 255));
  }
  // Colour per cluster: the 16-colour palette, then hues spaced by the golden angle.
  function clusterRgb(c) {
    if (c < 0) return NOISE;
    if (c < PALETTE.length) return rgbOf(PALETTE[c]);
    return dark ? hsl((c * 137.508) % 360, 0.6, 0.62) : hsl((c * 137.508) % 360, 0.55, 0.48);
  }
  function layerRgb(t) {
    for (let k = 1; k < LAYER_SCALE.length; k++) {
      const [t1, c1] = LAYER_SCALE[k], [t0, c0] = LAYER_SCALE[k - 1];
      if (t <= t1) {
        const u = (t - t0) / (t1 - t0 || 1), a = rgbOf(c0), b = rgbOf(c1);
        return a.map((v, i) => Math.round(v + (b[i] - v) * u));
      }
    }
    return rgbOf(LAYER_SCALE[LAYER_SCALE.length - 1][1]);
  }

  // ---- data --------------------------------------------------------------------------------

  // The buffer of /api/map/points/compact (see read/mapbin.py): the rows stay as they are for
  // WebGL; the fields the page reads per point (hover, colours, search) are unpacked once.
  function points(buf) {
    const dv = new DataView(buf);
    const magic = String.fromCharCode(...new Uint8Array(buf, 0, 5));
    if (magic !== "NAMAP" || dv.getUint8(6) !== 2) throw new Error("not a version-2 map buffer");
    const n = dv.getUint32(8, true), g = dv.getUint32(16, true), at = 40 + 4 * (g * g + 1);
    const box = [0, 1, 2, 3].map((k) => dv.getFloat32(24 + 4 * k, true));
    const u16 = new Uint16Array(buf, at, 6 * n), u32 = new Uint32Array(buf, at, 3 * n);
    const P = { n: n, built: (dv.getUint32(12, true) & 1) === 1, grid: g, box: box,
      starts: new Uint32Array(buf, 40, g * g + 1), rows: new Uint8Array(buf, at, 12 * n),
      x: new Float32Array(n), y: new Float32Array(n), layer: new Uint16Array(n), neuron: new Uint32Array(n),
      cluster: new Int32Array(n), coarse: new Int32Array(n), tile: new Uint16Array(n) };
    const sx = (box[1] - box[0]) / 65535, sy = (box[3] - box[2]) / 65535;
    const id16 = (v) => (v === 0xffff ? NONE : v === 0xfffe ? -1 : v);
    for (let i = 0; i < n; i++) {
      P.x[i] = box[0] + u16[6 * i] * sx; P.y[i] = box[2] + u16[6 * i + 1] * sy;
      P.cluster[i] = id16(u16[6 * i + 2]); P.coarse[i] = id16(u16[6 * i + 3]);
      const id = u32[3 * i + 2]; P.layer[i] = id >>> 20; P.neuron[i] = id & 0xfffff;
    }
    for (let t = 0; t < g * g; t++) P.tile.fill(t, P.starts[t], P.starts[t + 1]);
    return P;
  }
  function idOf(i) { return window.naFormatId(P.layer[i], P.neuron[i]); }
  function indexOf(id) {  // built on the first search, not for every page view
    if (!index) { index = new Map(); for (let i = 0; i < count; i++) index.set(idOf(i), i); }
    return index.get(id);
  }

  // A grid over the points (counting sort into cells) for the hover's nearest-point search.
  let grid = null;
  function buildGrid() {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < count; i++) {
      const x = P.x[i], y = P.y[i];
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    const side = Math.max(1, Math.min(1024, Math.round(Math.sqrt(count / 4))));
    const w = (x1 - x0) / side || 1, h = (y1 - y0) / side || 1;
    const cell = new Int32Array(count), starts = new Int32Array(side * side + 1);
    for (let i = 0; i < count; i++) {
      const cx = Math.min(side - 1, Math.floor((P.x[i] - x0) / w)), cy = Math.min(side - 1, Math.floor((P.y[i] - y0) / h));
      cell[i] = cy * side + cx; starts[cell[i] + 1]++;
    }
    for (let c = 0; c < side * side; c++) starts[c + 1] += starts[c];
    const order = new Int32Array(count), fill = starts.slice(0, side * side);
    for (let i = 0; i < count; i++) order[fill[cell[i]]++] = i;
    grid = { x0, y0, w, h, side, starts, order };
    return { x: [x0, x1], y: [y0, y1] };
  }

  // ---- view and drawing ----------------------------------------------------------------------

  function size() { return { w: canvas.clientWidth, h: canvas.clientHeight }; }
  function toPx(x, y) {
    const s = size();
    return [((x - view.x[0]) / (view.x[1] - view.x[0])) * s.w, ((view.y[1] - y) / (view.y[1] - view.y[0])) * s.h];
  }
  function toData(px, py) {
    const s = size();
    return [view.x[0] + (px / s.w) * (view.x[1] - view.x[0]), view.y[1] - (py / s.h) * (view.y[1] - view.y[0])];
  }

  // p: the point in the map's box, 0..1 (uint16 rows, normalised); b: the box; v: the view
  const VS = "attribute vec2 p; attribute vec3 c; uniform vec4 b; uniform vec4 v; uniform float s; varying vec3 col;" +
    "void main() { vec2 q = vec2(b.x + p.x * (b.y - b.x), b.z + p.y * (b.w - b.z));" +
    " gl_Position = vec4((q.x - v.x) / (v.y - v.x) * 2.0 - 1.0, (q.y - v.z) / (v.w - v.z) * 2.0 - 1.0, 0.0, 1.0);" +
    " gl_PointSize = s; col = c; }";
  const FS = "precision mediump float; varying vec3 col; uniform float ring; uniform float a;" +
    "void main() { float d = length(gl_PointCoord - 0.5); if (d > 0.5 || (ring > 0.5 && d < 0.32)) discard;" +
    " gl_FragColor = vec4(col * a, a); }";

  function setupGl() {
    gl = canvas.getContext("webgl", { antialias: false, premultipliedAlpha: true, preserveDrawingBuffer: true });
    if (!gl) { ctx2d = canvas.getContext("2d"); return; }
    const sh = (type, src) => { const o = gl.createShader(type); gl.shaderSource(o, src); gl.compileShader(o); return o; };
    prog = gl.createProgram();
    gl.attachShader(prog, sh(gl.VERTEX_SHADER, VS)); gl.attachShader(prog, sh(gl.FRAGMENT_SHADER, FS));
    gl.linkProgram(prog); gl.useProgram(prog);
    buffers.xy = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, buffers.xy); gl.bufferData(gl.ARRAY_BUFFER, P.rows, gl.STATIC_DRAW);
    buffers.rgb = gl.createBuffer(); buffers.hxy = gl.createBuffer(); buffers.hrgb = gl.createBuffer();
    gl.enable(gl.BLEND); gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
  }

  let rgb = null, colourSet = 0;
  function recolour() {
    const useCoarse = coarse.length && !shownLevel.startsWith("fine");
    const by = colourBy === "cluster" ? (useCoarse ? P.coarse : P.cluster) : null;
    rgb = new Uint8Array(count * 3);
    const memo = new Map();
    let top = 0;
    for (let i = 0; i < count; i++) if (P.layer[i] > top) top = P.layer[i];
    for (let i = 0; i < count; i++) {
      const key = by ? by[i] : P.layer[i];
      let c = memo.get(key);
      if (!c) { c = by ? clusterRgb(key) : layerRgb(top ? key / top : 0); memo.set(key, c); }
      rgb[3 * i] = c[0]; rgb[3 * i + 1] = c[1]; rgb[3 * i + 2] = c[2];
    }
    colourSet = memo.size;
    if (gl) { gl.bindBuffer(gl.ARRAY_BUFFER, buffers.rgb); gl.bufferData(gl.ARRAY_BUFFER, rgb, gl.STATIC_DRAW); }
    const legend = $("#map-legend");
    if (legend) legend.hidden = colourBy !== "layer" || !top;
    if (legend && top) legend.querySelector(".hi").textContent = String(top);
  }

  function pointSize() { return count > 150000 ? 2 : count > 30000 ? 3 : count > 3000 ? 4 : count > 500 ? 6 : 9; }

  // Which points this view draws: per tile, how many of its first points (see the top).
  let lod = null;
  function plan() {
    const g = P.grid, st = P.starts, b = P.box, k = new Uint32Array(g * g);
    const at = (v, lo, hi) => Math.max(0, Math.min(g - 1, Math.floor(((v - lo) / ((hi - lo) || 1)) * g)));
    const tx0 = at(view.x[0], b[0], b[1]), tx1 = at(view.x[1], b[0], b[1]);
    const ty0 = at(view.y[0], b[2], b[3]), ty1 = at(view.y[1], b[2], b[3]);
    let total = 0;
    for (let ty = ty0; ty <= ty1; ty++) total += st[ty * g + tx1 + 1] - st[ty * g + tx0];
    // steps of √2, so that a pan does not make points come and go
    const frac = total > BUDGET ? Math.pow(2, Math.floor(2 * Math.log2(BUDGET / total)) / 2) : 1;
    const runs = [];
    let drawn = 0, a = -1, e = -1;
    for (let ty = ty0; ty <= ty1; ty++) {
      for (let tx = tx0; tx <= tx1; tx++) {
        const t = ty * g + tx, s = st[t], m = Math.ceil((st[t + 1] - s) * frac);
        if (!m) continue;
        k[t] = m; drawn += m;
        if (s === e) e = s + m; else { if (a >= 0) runs.push(a, e - a); a = s; e = s + m; }
      }
    }
    if (a >= 0) runs.push(a, e - a);
    lod = { k: k, runs: runs, drawn: drawn };
  }
  function isDrawn(i) { return !lod || i - P.starts[P.tile[i]] < lod.k[P.tile[i]]; }

  function drawGl() {
    const dpr = window.devicePixelRatio || 1;
    gl.viewport(0, 0, canvas.width, canvas.height);
    gl.clearColor(0, 0, 0, 0); gl.clear(gl.COLOR_BUFFER_BIT);
    const u = (n) => gl.getUniformLocation(prog, n), pa = gl.getAttribLocation(prog, "p"), ca = gl.getAttribLocation(prog, "c");
    gl.uniform4f(u("v"), view.x[0], view.x[1], view.y[0], view.y[1]);
    gl.uniform4f(u("b"), P.box[0], P.box[1], P.box[2], P.box[3]);
    gl.enableVertexAttribArray(pa); gl.enableVertexAttribArray(ca);
    // rows: uint16 x, y normalised, 12 bytes apart; highlights: float x, y in the same 0..1
    const pass = (xy, rows, col, runs, px, ring, alpha) => {
      gl.bindBuffer(gl.ARRAY_BUFFER, xy);
      if (rows) gl.vertexAttribPointer(pa, 2, gl.UNSIGNED_SHORT, true, 12, 0); else gl.vertexAttribPointer(pa, 2, gl.FLOAT, false, 0, 0);
      gl.bindBuffer(gl.ARRAY_BUFFER, col); gl.vertexAttribPointer(ca, 3, gl.UNSIGNED_BYTE, true, 0, 0);
      gl.uniform1f(u("s"), px * dpr); gl.uniform1f(u("ring"), ring); gl.uniform1f(u("a"), alpha);
      for (let r = 0; r < runs.length; r += 2) gl.drawArrays(gl.POINTS, runs[r], runs[r + 1]);
    };
    pass(buffers.xy, true, buffers.rgb, lod.runs, pointSize(), 0, 0.8);
    if (matches.length) pass(buffers.hxy, false, buffers.hrgb, [0, matches.length], Math.max(10, pointSize() * 4), 1, 1);
  }

  function draw2d() {  // no WebGL: the same picture with the 2-D canvas, slower
    const dpr = window.devicePixelRatio || 1, r = pointSize() * dpr;
    ctx2d.setTransform(1, 0, 0, 1, 0, 0); ctx2d.clearRect(0, 0, canvas.width, canvas.height);
    for (let r = 0; r < lod.runs.length; r += 2) for (let i = lod.runs[r]; i < lod.runs[r] + lod.runs[r + 1]; i++) {
      const [px, py] = toPx(P.x[i], P.y[i]);
      ctx2d.fillStyle = "rgba(" + rgb[3 * i] + "," + rgb[3 * i + 1] + "," + rgb[3 * i + 2] + ",.8)";
      ctx2d.fillRect(px * dpr - r / 2, py * dpr - r / 2, r, r);
    }
    ctx2d.strokeStyle = dark ? "#ffffff" : "#d00000"; ctx2d.lineWidth = 2 * dpr;
    for (const i of matches) { const [px, py] = toPx(P.x[i], P.y[i]); ctx2d.strokeRect(px * dpr - 6, py * dpr - 6, 12, 12); }
  }

  function render() {
    pending = false;
    plan();
    div.dataset.drawn = String(lod.drawn);
    if (gl) drawGl(); else draw2d();
    relabel();
    const done = frameWaiters; frameWaiters = [];
    done.forEach((f) => f());
  }
  let frameWaiters = [];
  function schedule() {
    return new Promise((resolve) => {
      frameWaiters.push(resolve);
      if (!pending) { pending = true; requestAnimationFrame(render); }
    });
  }
  function resize() {
    const dpr = window.devicePixelRatio || 1, s = size();
    canvas.width = Math.max(1, Math.round(s.w * dpr)); canvas.height = Math.max(1, Math.round(s.h * dpr));
    if (view) schedule();
  }

  // ---- labels --------------------------------------------------------------------------------

  const measure = document.createElement("canvas").getContext("2d");
  const FONT = getComputedStyle(document.body).fontFamily || "sans-serif";
  // Labels in priority order (largest cluster first), each kept only if its box, in screen
  // pixels, overlaps no label already kept and lies inside the map: labels never overlap.
  function unclutter(cands, big, most) {
    const s = size(), kept = [], boxes = [];
    measure.font = (big ? "bold 12px " : "11px ") + FONT;
    const h = (big ? 12 : 11) + 8;
    for (const c of cands) {
      const [px, py] = toPx(c.x, c.y), w = measure.measureText(c.label).width + 12;
      const box = [px - w / 2, py - h / 2, px + w / 2, py + h / 2];
      if (box[0] < 0 || box[1] < 0 || box[2] > s.w || box[3] > s.h) continue;
      if (boxes.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) continue;
      boxes.push(box); kept.push({ c: c, px: px, py: py });
      if (kept.length >= most) break;
    }
    return kept;
  }

  // The labels for the current view: coarse when most of the map is in view, else fine.
  function labelsFor() {
    const share = home ? ((view.x[1] - view.x[0]) / (home.x[1] - home.x[0])) * ((view.y[1] - view.y[0]) / (home.y[1] - home.y[0])) : 1;
    if (coarse.length && share >= FINE_BELOW) {
      return { level: "coarse", notes: unclutter(coarse.slice().sort((a, b) => b.size - a.size), true, Infinity) };
    }
    const inside = fine.filter((c) => c.cluster >= 0 && c.x >= view.x[0] && c.x <= view.x[1] && c.y >= view.y[0] && c.y <= view.y[1]);
    inside.sort((a, b) => b.size - a.size);
    return { level: "fine", notes: unclutter(inside, false, MAX_FINE_LABELS) };
  }

  function relabel() {
    if (!fine.length && !coarse.length) return;
    const got = labelsFor();
    const key = got.level + ":" + got.notes.map((n) => n.c.cluster + "@" + Math.round(n.px) + "," + Math.round(n.py)).join("|");
    if (key === level) return;
    level = key;
    if (got.level !== shownLevel) {
      shownLevel = got.level;
      if (colourBy === "cluster") { recolour(); schedule(); }
    }
    div.dataset.level = got.level;
    div.dataset.labels = String(got.notes.length);
    const note = $("#map-level");
    if (note) {
      note.textContent = got.level === "coarse"
        ? coarse.length + " coarse clusters · zoom in for " + fine.length + " fine ones"
        : got.notes.length + " of " + fine.length + " fine clusters labelled" + (coarse.length ? " · zoom out for coarse" : "");
    }
    labels.innerHTML = got.notes.map((n) =>
      '<div class="annotation' + (got.level === "coarse" ? " big" : "") + '" style="left:' + n.px.toFixed(1) +
      "px;top:" + n.py.toFixed(1) + 'px"><span class="annotation-text">' + esc(n.c.label) + "</span></div>").join("");
  }

  // ---- interaction ---------------------------------------------------------------------------

  function nearest(px, py) {
    if (!grid) return -1;
    const [dx, dy] = toData(px, py), s = size();
    const rx = (HOVER_PX / s.w) * (view.x[1] - view.x[0]), ry = (HOVER_PX / s.h) * (view.y[1] - view.y[0]);
    const c0 = Math.max(0, Math.floor((dx - rx - grid.x0) / grid.w)), c1 = Math.min(grid.side - 1, Math.floor((dx + rx - grid.x0) / grid.w));
    const r0 = Math.max(0, Math.floor((dy - ry - grid.y0) / grid.h)), r1 = Math.min(grid.side - 1, Math.floor((dy + ry - grid.y0) / grid.h));
    let best = -1, bestD = HOVER_PX * HOVER_PX;
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const cell = r * grid.side + c;
        for (let k = grid.starts[cell]; k < grid.starts[cell + 1]; k++) {
          const i = grid.order[k];
          if (!isDrawn(i)) continue;
          const [qx, qy] = toPx(P.x[i], P.y[i]), d = (qx - px) ** 2 + (qy - py) ** 2;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  function clusterLine(i) {
    const f = fineById.get(P.cluster[i]);
    if (!f) return "";
    const c = coarseById.get(P.coarse[i]);
    return '<div class="muted">' + (c ? esc(c.label) + " › " : "") + esc(f.label) + "</div>";
  }
  async function explanationOf(i) {
    const id = idOf(i);
    if (!summaries.has(id)) {
      const r = await fetch("/api/neurons/" + id + "/summary");
      summaries.set(id, r.ok ? (await r.json()).explanation || "" : "");
    }
    return summaries.get(id);
  }
  function place(ev) {
    const box = wrap.getBoundingClientRect();
    let x = ev.clientX - box.left + 14, y = ev.clientY - box.top + 14;
    if (x + 360 > box.width) x = Math.max(4, x - 380);
    tip.style.left = x + "px"; tip.style.top = y + "px";
  }
  async function hover(ev, i) {
    if (i === hovered) { if (i >= 0) place(ev); return; }
    hovered = i;
    canvas.style.cursor = i >= 0 ? "pointer" : "";
    if (i < 0) { tip.hidden = true; return; }
    const id = idOf(i);
    tip.hidden = false; place(ev);
    tip.innerHTML = "<b>" + id + "</b>";
    const text = await explanationOf(i);
    if (!tip.hidden && tip.firstChild && tip.firstChild.textContent === id) {
      tip.innerHTML = "<b>" + id + "</b>" + clusterLine(i) + esc(text || "(no explanation)");
    }
  }

  function setView(x0, x1, y0, y1) {
    view = { x: [Math.min(x0, x1), Math.max(x0, x1)], y: [Math.min(y0, y1), Math.max(y0, y1)] };
    return schedule();
  }
  function zoomAt(px, py, f) {
    const [dx, dy] = toData(px, py);
    return setView(dx - (dx - view.x[0]) * f, dx + (view.x[1] - dx) * f, dy - (dy - view.y[0]) * f, dy + (view.y[1] - dy) * f);
  }

  function listen() {
    let drag = null;
    const local = (ev) => { const b = canvas.getBoundingClientRect(); return [ev.clientX - b.left, ev.clientY - b.top]; };
    canvas.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const [px, py] = local(ev);
      zoomAt(px, py, Math.pow(1.0015, ev.deltaY));
    }, { passive: false });
    canvas.addEventListener("mousedown", (ev) => { drag = { at: local(ev), view: view, moved: false }; });
    window.addEventListener("mouseup", () => { setTimeout(() => { drag = null; }, 0); });
    canvas.addEventListener("mousemove", (ev) => {
      const [px, py] = local(ev);
      if (drag && ev.buttons & 1) {
        const s = size(), ddx = px - drag.at[0], ddy = py - drag.at[1];
        if (Math.abs(ddx) + Math.abs(ddy) > 3) drag.moved = true;
        if (drag.moved) {
          tip.hidden = true; hovered = -1;
          const wx = (ddx / s.w) * (drag.view.x[1] - drag.view.x[0]), wy = (ddy / s.h) * (drag.view.y[1] - drag.view.y[0]);
          setView(drag.view.x[0] - wx, drag.view.x[1] - wx, drag.view.y[0] + wy, drag.view.y[1] + wy);
          return;
        }
      }
      hover(ev, nearest(px, py));
    });
    canvas.addEventListener("mouseleave", () => { hovered = -1; tip.hidden = true; });
    canvas.addEventListener("click", (ev) => {
      if (drag && drag.moved) return;
      const [px, py] = local(ev), i = nearest(px, py);
      if (i >= 0) location.href = "/neurons/" + idOf(i);
    });
    canvas.addEventListener("dblclick", () => setView(home.x[0], home.x[1], home.y[0], home.y[1]));
    if (window.ResizeObserver) new ResizeObserver(resize).observe(canvas);
  }

  function highlight(found) {
    matches = found.map((r) => indexOf(r.id)).filter((i) => i !== undefined);
    if (gl) {
      const xy = new Float32Array(matches.length * 2), col = new Uint8Array(matches.length * 3);
      const ring = dark ? [255, 255, 255] : [208, 0, 0], b = P.box;
      matches.forEach((i, k) => {
        xy[2 * k] = (P.x[i] - b[0]) / ((b[1] - b[0]) || 1); xy[2 * k + 1] = (P.y[i] - b[2]) / ((b[3] - b[2]) || 1);
        col.set(ring, 3 * k);
      });
      gl.bindBuffer(gl.ARRAY_BUFFER, buffers.hxy); gl.bufferData(gl.ARRAY_BUFFER, xy, gl.DYNAMIC_DRAW);
      gl.bindBuffer(gl.ARRAY_BUFFER, buffers.hrgb); gl.bufferData(gl.ARRAY_BUFFER, col, gl.DYNAMIC_DRAW);
    }
    schedule();
    return matches.length;
  }

  // ---- start ---------------------------------------------------------------------------------

  async function start(m, pts) {
    P = pts; count = pts.n;
    fine = m.clusters || []; coarse = m.coarse || [];
    fine.forEach((c) => fineById.set(c.cluster, c)); coarse.forEach((c) => coarseById.set(c.cluster, c));
    if (m.built && fine.length) colourBy = "cluster";
    canvas = document.createElement("canvas"); canvas.id = "map-canvas";
    labels = document.createElement("div"); labels.className = "map-labels";
    div.append(canvas, labels);
    const legend = document.createElement("div"); legend.id = "map-legend"; legend.hidden = true;
    legend.innerHTML = '<span class="muted">layer 0</span><span class="bar" style="background:linear-gradient(90deg,' +
      LAYER_SCALE.map((s) => s[1] + " " + s[0] * 100 + "%").join(",") + ')"></span><span class="muted hi"></span>';
    wrap.append(legend);
    const ext = buildGrid(), padX = (ext.x[1] - ext.x[0]) * 0.03 || 1, padY = (ext.y[1] - ext.y[0]) * 0.03 || 1;
    home = { x: [ext.x[0] - padX, ext.x[1] + padX], y: [ext.y[0] - padY, ext.y[1] + padY] };
    view = { x: home.x.slice(), y: home.y.slice() };
    setupGl();
    resize();
    recolour();
    listen();
    if (colourBy === "cluster") document.querySelectorAll(".toggle button").forEach((b) => b.classList.toggle("on", b.dataset.colour === "cluster"));
    await schedule();
    times.drawn = performance.now();
    $("#map-loading").remove();
    div.dataset.ready = String(count);
  }

  window.naMap = {
    view: () => ({ x: view.x.slice(), y: view.y.slice() }),
    setView: setView,
    reset: () => setView(home.x[0], home.x[1], home.y[0], home.y[1]),
    toScreen: (id) => { const i = indexOf(id), b = canvas.getBoundingClientRect(), [px, py] = toPx(P.x[i], P.y[i]); return [b.left + px, b.top + py]; },
    colourCount: () => colourSet,
    highlighted: () => matches.length,
    drawn: () => lod.drawn,
    count: (keep) => { let k = 0; for (let i = 0; i < count; i++) if (keep(P.x[i], P.y[i])) k++; return k; },
  };

  document.querySelectorAll(".toggle button").forEach(function (btn) {
    btn.addEventListener("click", function () {
      if (!P) return;
      document.querySelectorAll(".toggle button").forEach((b) => b.classList.toggle("on", b === btn));
      colourBy = btn.dataset.colour;
      recolour(); schedule();
    });
  });

  $("#map-search").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const q = $("#map-q").value.trim(), out = $("#map-found");
    if (!q || !P) return;
    const id = window.naParseId(q);
    if (id && indexOf(id) !== undefined) { out.textContent = highlight([{ id: id }]) + " match"; return; }
    out.textContent = "Searching…";
    const r = await fetch("/api/search?" + new URLSearchParams({ q: q, k: "100" }));
    const body = await r.json();
    if (!r.ok) { out.textContent = body.error.message; return; }
    const shown = highlight(body.results);
    out.textContent = shown + " match" + (shown === 1 ? "" : "es") + " (" + body.mode + ")";
  });
  $("#map-clear").addEventListener("click", function () {
    if (P) highlight([]); $("#map-found").textContent = ""; $("#map-q").value = "";
  });

  // The clusters (small) and the points (typed arrays) are fetched at once; the note and the
  // cluster count show as soon as the clusters are in.
  const pointsArriving = fetch("/api/map/points/compact").then(async function (r) {
    if (!r.ok) throw new Error((await r.json()).error.message);
    const buf = await r.arrayBuffer();
    times.points = performance.now();
    return points(buf);
  });
  fetch("/api/map/clusters").then(async function (r) {
    const m = await r.json();
    times.clusters = performance.now();
    if (!r.ok) { $("#map-loading").textContent = m.error.message; return; }
    if (m.message) {
      const note = $("#map-note");
      note.innerHTML = esc(m.message).split("`").map((p, i) => (i % 2 ? "<code>" + p + "</code>" : p)).join("");
      note.hidden = false;
    }
    if (!m.clusters || !m.clusters.length) {
      document.querySelector('.toggle button[data-colour="cluster"]').disabled = true;
    } else {
      $("#map-loading").textContent = "Loading " + m.count.toLocaleString() + " neurons in " +
        m.clusters.length.toLocaleString() + " clusters…";
    }
    let pts;
    try { pts = await pointsArriving; } catch (e) { $("#map-loading").textContent = String(e.message || e); return; }
    start(m, pts);
  });
})();
