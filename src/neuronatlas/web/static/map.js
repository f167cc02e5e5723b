// The map page: every neuron as a WebGL point (plotly scattergl), coloured by layer or
// cluster, with a hover card, click-through to the neuron and search highlighting. Cluster
// labels come in two levels: the coarse clusters' zoomed out, the fine clusters' (those in
// view, largest first) once the view is zoomed in; a label that would overlap a larger
// cluster's is left out. The clusters come first (/api/map/clusters, small JSON), the points
// as typed arrays (/api/map/points, read.mapbin: viewed in place, never parsed), so 307,200
// points cost 6.8 MB and no JSON parsing.
(function () {
  "use strict";
  const $ = (s) => document.querySelector(s);
  const div = $("#map"), tip = $("#tip"), wrap = $("#map-wrap");
  const dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  const ink = dark ? "#e6e8ec" : "#1d2129", faint = dark ? "#2c313b" : "#e3e6eb";
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
    "#ff9da7", "#9c755f", "#86bcb6", "#d37295", "#8cd17d", "#b6992d", "#499894", "#f1ce63", "#a0cbe8"];
  let index = null, cols = null, summaries = new Map(), count = 0;
  const times = (window.naMapTimes = { start: performance.now() });
  let fine = [], coarse = [], fineById = new Map(), coarseById = new Map(), full = null, level = "";
  let colourBy = "layer";
  const FINE_BELOW = 0.25;  // show fine labels once the view covers less than this share of the map
  const MAX_FINE_LABELS = 60;

  // Viridis-like, without the end that vanishes into the page background of each theme.
  const LAYER_SCALE = dark
    ? [[0, "#5b7cfa"], [0.35, "#2fc6c0"], [0.7, "#8fdc5a"], [1, "#ffd166"]]
    : [[0, "#3b0f70"], [0.3, "#3e4a89"], [0.55, "#21918c"], [0.8, "#5ec962"], [1, "#c99400"]];
  function layerColours() { return { color: cols.layer, colorscale: LAYER_SCALE, showscale: true,
    colorbar: { title: { text: "layer", font: { color: ink } }, tickfont: { color: ink }, thickness: 10, len: 0.5 } }; }
  // Colour per cluster: the 16-colour palette, then hues spaced by the golden angle.
  function colourOf(c) {
    if (c < PALETTE.length) return PALETTE[c];
    return "hsl(" + Math.round((c * 137.508) % 360) + "," + (dark ? "60%,62%)" : "55%,48%)");
  }
  // Points take the colours of the level whose labels are shown.
  function clusterColours() {
    const by = coarse.length && !level.startsWith("fine") ? cols.coarse : cols.cluster;
    const named = new Map();  // one string per cluster, shared by its points
    const colour = (c) => { if (c < 0) return "#9aa1ad"; let v = named.get(c); if (!v) named.set(c, (v = colourOf(c))); return v; };
    return { color: Array.from(by, colour), showscale: false };
  }

  function extent(v) {  // max − min without spreading 300,000 arguments
    let lo = Infinity, hi = -Infinity;
    for (const a of v) { if (a < lo) lo = a; if (a > hi) hi = a; }
    return hi - lo;
  }

  function annotation(c, big) {
    return { x: c.x, y: c.y, text: big ? "<b>" + esc(c.label) + "</b>" : esc(c.label), showarrow: false,
      font: { size: big ? 12 : 11, color: ink }, borderpad: 2,
      bgcolor: dark ? "rgba(20,22,27,.72)" : "rgba(255,255,255,.78)" };
  }

  const measure = document.createElement("canvas").getContext("2d");
  // Labels in priority order (largest cluster first), each kept only if its box, in screen
  // pixels, overlaps no label already kept and lies inside the plot: labels never overlap.
  function unclutter(L, cands, big, most) {
    const xa = L.xaxis, ya = L.yaxis, kept = [], boxes = [];
    measure.font = (big ? "bold 12px " : "11px ") + ((L.font && L.font.family) || "sans-serif");
    const h = (big ? 12 : 11) + 8;
    for (const c of cands) {
      const px = xa.l2p(c.x), py = ya.l2p(c.y), w = measure.measureText(c.label).width + 10;
      const box = [px - w / 2, py - h / 2, px + w / 2, py + h / 2];
      if (box[0] < 0 || box[1] < 0 || box[2] > xa._length || box[3] > ya._length) continue;
      if (boxes.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) continue;
      boxes.push(box); kept.push(annotation(c, big));
      if (kept.length >= most) break;
    }
    return kept;
  }

  // The labels for the current view: coarse when most of the map is in view, else fine.
  function labelsFor(L, xr, yr) {
    const share = full ? ((xr[1] - xr[0]) / full.w) * ((yr[1] - yr[0]) / full.h) : 1;
    if (coarse.length && share >= FINE_BELOW) {
      const big = coarse.slice().sort((a, b) => b.size - a.size);
      return { level: "coarse", notes: unclutter(L, big, true, Infinity) };
    }
    const lo = (r) => Math.min(r[0], r[1]), hi = (r) => Math.max(r[0], r[1]);
    const inside = fine.filter((c) => c.cluster >= 0 && c.x >= lo(xr) && c.x <= hi(xr) && c.y >= lo(yr) && c.y <= hi(yr));
    inside.sort((a, b) => b.size - a.size);
    return { level: "fine", notes: unclutter(L, inside, false, MAX_FINE_LABELS) };
  }

  function relabel() {
    const L = div._fullLayout;
    if (!L || !L.xaxis) return;
    const got = labelsFor(L, L.xaxis.range, L.yaxis.range);
    const key = got.level + ":" + got.notes.map((a) => a.text).join("|");
    if (key === level) return;
    const changed = got.level !== level.split(":")[0];
    level = key;
    if (changed && colourBy === "cluster") {
      Plotly.restyle(div, { "marker.color": [clusterColours().color] }, [0]);
    }
    div.dataset.level = got.level;
    div.dataset.labels = String(got.notes.length);
    const note = $("#map-level");
    if (note) {
      note.textContent = !fine.length ? "" : got.level === "coarse"
        ? coarse.length + " coarse clusters · zoom in for " + fine.length + " fine ones"
        : got.notes.length + " of " + fine.length + " fine clusters labelled" + (coarse.length ? " · zoom out for coarse" : "");
    }
    Plotly.relayout(div, { annotations: got.notes });
  }

  function clusterLine(i) {
    const f = fineById.get(cols.cluster[i]);
    if (!f) return "";
    const c = coarseById.get(cols.coarse ? cols.coarse[i] : null);
    return '<div class="muted">' + (c ? esc(c.label) + " › " : "") + esc(f.label) + "</div>";
  }

  function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c])); }

  function idOf(i) { return window.naFormatId(cols.layer[i], cols.neuron[i]); }
  function indexOf(id) {  // built on the first search, not for every page view
    if (!index) { index = new Map(); for (let i = 0; i < count; i++) index.set(idOf(i), i); }
    return index.get(id);
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

  // The buffer of /api/map/points as typed arrays viewing it in place (see read/mapbin.py).
  function points(buf) {
    const dv = new DataView(buf);
    const magic = String.fromCharCode(...new Uint8Array(buf, 0, 5));
    if (magic !== "NAMAP" || dv.getUint8(6) !== 1) throw new Error("not a version-1 map buffer");
    const n = dv.getUint32(8, true), at = (k) => 16 + 4 * n * k;
    return { n: n, built: (dv.getUint32(12, true) & 1) === 1, x: new Float32Array(buf, at(0), n),
      y: new Float32Array(buf, at(1), n), neuron: new Uint32Array(buf, at(2), n),
      cluster: new Int32Array(buf, at(3), n), coarse: new Int32Array(buf, at(4), n),
      layer: new Uint16Array(buf, at(5), n) };
  }

  async function draw(m, pts) {
    cols = pts;
    fine = m.clusters || []; coarse = m.coarse || [];
    fine.forEach((c) => fineById.set(c.cluster, c)); coarse.forEach((c) => coarseById.set(c.cluster, c));
    const n = (count = pts.n);
    if (m.built && n) {
      full = { w: extent(cols.x) || 1, h: extent(cols.y) || 1 };
    }
    const byCluster = m.built && fine.length > 0;
    if (byCluster) colourBy = "cluster";
    const size = n > 150000 ? 2 : n > 30000 ? 3 : n > 3000 ? 4 : n > 500 ? 6 : 9;
    const base = { type: "scattergl", mode: "markers", x: cols.x, y: cols.y, hoverinfo: "none",
      marker: Object.assign({ size: size, opacity: 0.8 }, byCluster ? clusterColours() : layerColours()),
      name: "neurons" };
    const hi = { type: "scattergl", mode: "markers", x: [], y: [], hoverinfo: "none", name: "matches",
      marker: { size: Math.max(8, size * 3), color: "rgba(0,0,0,0)", line: { color: dark ? "#ffffff" : "#d00000", width: 2 } } };
    const axis = { showgrid: false, zeroline: false, showticklabels: !m.built, color: ink,
      linecolor: faint };
    const layout = {
      margin: { l: m.built ? 10 : 50, r: 10, t: 10, b: m.built ? 10 : 40 }, showlegend: false,
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", hovermode: "closest",
      dragmode: "zoom", font: { color: ink },
      xaxis: Object.assign({ title: m.built ? "" : { text: "neuron" } }, axis),
      yaxis: Object.assign({ title: m.built ? "" : { text: "layer" } }, axis),
      annotations: [],
    };
    await Plotly.newPlot(div, [base, hi], layout, { responsive: true, displaylogo: false, scrollZoom: true,
      modeBarButtonsToRemove: ["select2d", "lasso2d", "toImage"] });
    $("#map-loading").remove();
    if (byCluster) {
      document.querySelectorAll(".toggle button").forEach((b) => b.classList.toggle("on", b.dataset.colour === "cluster"));
    }
    times.drawn = performance.now();
    relabel();
    div.on("plotly_relayout", function (ev) { if (!ev || !("annotations" in ev)) relabel(); });
    div.dataset.ready = String(n);

    div.on("plotly_hover", async function (ev) {
      const p = ev.points[0];
      const i = p.curveNumber === 0 ? p.pointIndex : Number(p.customdata);
      const id = idOf(i);
      tip.hidden = false; place(ev.event);
      tip.innerHTML = "<b>" + id + "</b>";
      const text = await explanationOf(i);
      if (!tip.hidden && tip.firstChild && tip.firstChild.textContent === id) {
        tip.innerHTML = "<b>" + id + "</b>" + clusterLine(i) + esc(text || "(no explanation)");
      }
    });
    div.on("plotly_unhover", function () { tip.hidden = true; });
    div.on("plotly_click", function (ev) {
      const p = ev.points[0];
      const i = p.curveNumber === 0 ? p.pointIndex : Number(p.customdata);
      location.href = "/neurons/" + idOf(i);
    });
  }

  document.querySelectorAll(".toggle button").forEach(function (btn) {
    btn.addEventListener("click", function () {
      if (!cols) return;
      document.querySelectorAll(".toggle button").forEach((b) => b.classList.toggle("on", b === btn));
      colourBy = btn.dataset.colour;
      const c = colourBy === "cluster" ? clusterColours() : layerColours();
      Plotly.restyle(div, { "marker.color": [c.color], "marker.showscale": [c.showscale],
        "marker.colorscale": [c.colorscale || null] }, [0]);
    });
  });

  function highlight(found) {
    const pts = found.map((r) => indexOf(r.id)).filter((i) => i !== undefined);
    Plotly.restyle(div, { x: [pts.map((i) => cols.x[i])], y: [pts.map((i) => cols.y[i])],
      customdata: [pts] }, [1]);
    return pts.length;
  }

  $("#map-search").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const q = $("#map-q").value.trim(), out = $("#map-found");
    if (!q || !cols) return;
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
    if (cols) highlight([]); $("#map-found").textContent = ""; $("#map-q").value = "";
  });

  // The clusters (small) and the points (typed arrays) are fetched at once; the note and
  // the cluster count show as soon as the clusters are in.
  const pointsArriving = fetch("/api/map/points").then(async function (r) {
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
    draw(m, pts);
  });
})();
