// The /trace page: POST /api/trace, then the graph drawn as SVG by hand (y: layer, x: token
// position; node size by influence, edge width by weight), a hover card per node, clicks to
// neuron pages, supernodes (map clusters) that collapse into one node, and "steer this
// supernode": POST /api/steer ablating the group, with the target's probability before and
// after and both greedy continuations.
(function () {
  "use strict";
  const form = document.getElementById("trace-form");
  if (!form) return;
  const SVGNS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const text = $("trace-text"), target = $("trace-target"), msg = $("trace-msg");
  const holder = $("trace-graph"), tip = $("trace-tip"), groupsBox = $("trace-groups");
  const logitsBox = $("trace-logits"), download = $("trace-download");
  const focus = form.dataset.focus || "";
  const MAX_GROUP = Number(form.dataset.maxNeurons || 256);
  const MAX_EDGES = 1500;
  let graph = null, request = null;
  const collapsed = new Set();
  const steered = new Map();  // supernode index -> its steering result (HTML), kept across redraws

  function esc(s) {
    return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  }
  function tok(s) { return esc(JSON.stringify(s)); }
  function fmt(p) { return Math.abs(p) >= 0.001 || p === 0 ? p.toFixed(3) : p.toExponential(1); }
  function el(name, attrs) {
    const e = document.createElementNS(SVGNS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }

  function readRequest() {
    const req = { text: text.value };
    if (target.value !== "") req.target = target.value;  // " Paris": the space is the token's
    const nodes = Number($("trace-max-nodes").value);
    if ($("trace-max-nodes").value !== "" && isFinite(nodes)) req.max_nodes = Math.round(nodes);
    for (const [id, key] of [["trace-node-threshold", "node_threshold"], ["trace-edge-threshold", "edge_threshold"]]) {
      const v = Number($(id).value);
      if ($(id).value !== "" && isFinite(v)) req[key] = v;
    }
    if ($("trace-group").checked) req.group = "cluster";
    return req;
  }

  async function post(url, body) {
    const res = await fetch(url, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) throw new Error(data && data.error ? data.error.message : "failed (" + res.status + ")");
    return data;
  }

  async function run() {
    if (!text.value.trim()) { msg.textContent = "Type a prompt first."; return; }
    const req = readRequest();
    msg.textContent = "Tracing…";
    download.disabled = true;
    let body;
    try { body = await post("/api/trace", req); } catch (e) { msg.textContent = e.message; return; }
    graph = body; request = req;
    collapsed.clear();
    steered.clear();
    const params = new URLSearchParams({ text: req.text });
    if (req.target) params.set("target", req.target);
    if (focus) params.set("focus", focus);
    history.replaceState(null, "", "/trace?" + params.toString());
    const neurons = graph.nodes.filter((n) => n.kind === "neuron").length;
    msg.textContent = neurons + " neurons and " + graph.links.length + " edges explain " + JSON.stringify(graph.target) +
      " after " + graph.tokens.length + " tokens (" + graph.neuron_rows + " neuron rows computed, completeness error " +
      graph.completeness_error.toExponential(1) + ")" +
      (graph.links.length > MAX_EDGES ? "; the strongest " + MAX_EDGES + " edges are drawn." : ".");
    fillTargets();
    download.disabled = false;
    draw();
    drawGroups();
    drawLogits();
  }

  // The target picker: the explained logits (the likeliest next tokens, or the chosen one).
  function fillTargets() {
    const chosen = request.target || "";
    const seen = new Set([""]);
    const opts = ['<option value="">the likeliest tokens</option>'];
    const logits = graph.nodes.filter((n) => n.kind === "logit").sort((a, b) => (b.probability || 0) - (a.probability || 0));
    for (const n of logits) {
      if (seen.has(n.token)) continue;
      seen.add(n.token);
      opts.push('<option value="' + esc(n.token) + '">' + tok(n.token) + " p " + fmt(n.probability || 0) + "</option>");
    }
    if (!seen.has(chosen)) opts.push('<option value="' + esc(chosen) + '">' + tok(chosen) + "</option>");
    target.innerHTML = opts.join("");
    target.value = chosen;
  }

  // Nodes as drawn: supernodes that are collapsed stand for their members.
  function visible() {
    const owner = new Map();
    (graph.supernodes || []).forEach(function (sn, i) {
      if (collapsed.has(i)) for (const id of sn.slice(1)) owner.set(id, "sn" + i);
    });
    const byId = new Map(graph.nodes.map((n) => [n.node_id, n]));
    const nodes = graph.nodes.filter((n) => !owner.has(n.node_id));
    for (const i of collapsed) {
      const sn = graph.supernodes[i];
      const members = sn.slice(1).map((id) => byId.get(id)).filter(Boolean);
      if (!members.length) continue;
      nodes.push({
        node_id: "sn" + i, kind: "supernode", label: sn[0], members: members, index: i,
        layer: members.reduce((s, m) => s + m.layer, 0) / members.length,
        position: members.reduce((s, m) => s + m.position, 0) / members.length,
        influence: members.reduce((s, m) => s + m.influence, 0),
      });
    }
    const merged = new Map();
    for (const link of graph.links) {
      const s = owner.get(link.source) || link.source, t = owner.get(link.target) || link.target;
      if (s === t) continue;
      const key = s + ">" + t;
      merged.set(key, { source: s, target: t, weight: (merged.has(key) ? merged.get(key).weight : 0) + link.weight });
    }
    return { nodes: nodes, links: [...merged.values()] };
  }

  function draw() {
    const L = graph.n_layers, P = graph.tokens.length;
    const view = visible();
    const colW = Math.max(84, Math.min(150, 1100 / P)), rowH = 64, left = 60, top = 30;
    const width = left + P * colW + 20, height = top + (L + 2) * rowH + 40;
    const rowOf = (n) => n.kind === "logit" ? L + 1 : n.kind === "embedding" ? 0 : n.layer + 1;
    const y = (row) => top + (L + 1 - row) * rowH + rowH / 2;
    const colX = (pos) => left + pos * colW + colW / 2;
    const pos = new Map();
    // nodes sharing a cell (layer, position) spread across it, most influential in the middle
    const cells = new Map();
    for (const n of view.nodes) {
      if (n.kind === "logit" || n.kind === "supernode") continue;
      const key = rowOf(n) + ":" + n.position;
      if (!cells.has(key)) cells.set(key, []);
      cells.get(key).push(n);
    }
    for (const list of cells.values()) {
      list.sort((a, b) => b.influence - a.influence);
      const step = Math.min(22, (colW * 0.85) / Math.max(1, list.length));
      list.forEach(function (n, k) {
        const off = (k % 2 ? 1 : -1) * Math.ceil(k / 2) * step;
        pos.set(n.node_id, [colX(n.position) + off, y(rowOf(n))]);
      });
    }
    const logits = view.nodes.filter((n) => n.kind === "logit").sort((a, b) => (b.probability || 0) - (a.probability || 0));
    const lstep = Math.min(colW, (width - left - 20) / Math.max(1, logits.length));
    logits.forEach((n, k) => pos.set(n.node_id, [colX(P - 1) - k * lstep, y(L + 1)]));
    for (const n of view.nodes) {
      if (n.kind === "supernode") pos.set(n.node_id, [colX(n.position), y(n.layer + 1)]);
    }
    const neuronInfl = view.nodes.filter((n) => n.kind === "neuron" || n.kind === "supernode").map((n) => n.influence);
    const maxInfl = Math.max(1e-12, ...neuronInfl);
    const maxW = Math.max(1e-12, ...view.links.map((l) => Math.abs(l.weight)));

    const svg = el("svg", { id: "trace-svg", width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img" });
    svg.appendChild(el("title", {})).textContent = "Attribution graph of " + JSON.stringify(graph.target);
    for (let row = 0; row <= L + 1; row++) {
      const label = row === 0 ? "emb" : row === L + 1 ? "logit" : "L" + (row - 1);
      svg.appendChild(el("line", { class: "grid", x1: left, x2: width - 20, y1: y(row), y2: y(row) }));
      svg.appendChild(el("text", { class: "axis", x: 8, y: y(row) + 4 })).textContent = label;
    }
    graph.tokens.forEach(function (t, p) {
      const label = el("text", { class: "axis tok", x: colX(p), y: height - 14, "text-anchor": "middle" });
      label.textContent = JSON.stringify(t).slice(1, -1).slice(0, 14);
      svg.appendChild(label);
    });
    const edges = el("g", { class: "edges" });
    // the strongest MAX_EDGES only: a big model's graph has thousands, and the rest are hairlines
    const drawn = view.links.slice().sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight)).slice(0, MAX_EDGES);
    for (const link of drawn.reverse()) {
      const a = pos.get(link.source), b = pos.get(link.target);
      if (!a || !b) continue;
      const w = Math.abs(link.weight) / maxW;
      const mid = (a[1] + b[1]) / 2;
      edges.appendChild(el("path", {
        d: "M" + a[0] + "," + a[1] + " C" + a[0] + "," + mid + " " + b[0] + "," + mid + " " + b[0] + "," + b[1],
        class: "edge " + (link.weight >= 0 ? "pos" : "neg"),
        "stroke-width": (0.4 + 5 * w).toFixed(2), "stroke-opacity": (0.25 + 0.6 * w).toFixed(2),
        "data-source": link.source, "data-target": link.target, "data-weight": link.weight.toPrecision(4),
      }));
    }
    svg.appendChild(edges);
    // an expanded supernode: a dashed box around its members, named by its cluster
    (graph.supernodes || []).forEach(function (sn, i) {
      if (collapsed.has(i)) return;
      const at = sn.slice(1).map((id) => pos.get(id)).filter(Boolean);
      if (!at.length) return;
      const xs = at.map((p) => p[0]), ys = at.map((p) => p[1]), pad = 18;
      const x0 = Math.min(...xs) - pad, y0 = Math.min(...ys) - pad;
      svg.appendChild(el("rect", {
        class: "sn-box", "data-sn": i, x: x0, y: y0, rx: 10,
        width: Math.max(...xs) - x0 + pad, height: Math.max(...ys) - y0 + pad,
      }));
      svg.appendChild(el("text", { class: "sn-label", x: x0 + 4, y: y0 - 4 })).textContent = sn[0];
    });
    const nodes = el("g", { class: "nodes" });
    for (const n of view.nodes) {
      const [cx, cy] = pos.get(n.node_id);
      let shape;
      if (n.kind === "rest") {
        shape = el("rect", { x: cx - 4, y: cy - 4, width: 8, height: 8 });
      } else {
        let r = 6;
        if (n.kind === "neuron" || n.kind === "supernode") r = 4 + 12 * Math.sqrt(Math.max(0, n.influence) / maxInfl);
        if (n.kind === "logit") r = 5 + 10 * Math.sqrt(n.probability || 0);
        shape = el("circle", { cx: cx, cy: cy, r: r.toFixed(2) });
      }
      let cls = "node " + n.kind;
      if (n.kind === "neuron" && n.neuron_id === focus) cls += " focus";
      if (n.kind === "logit" && n.is_target) cls += " target";
      shape.setAttribute("class", cls);
      shape.setAttribute("data-node", n.node_id);
      if (n.neuron_id) shape.setAttribute("data-neuron", n.neuron_id);
      shape.setAttribute("tabindex", "0");
      shape.addEventListener("mouseenter", (ev) => showTip(n, ev));
      shape.addEventListener("focus", (ev) => showTip(n, ev));
      shape.addEventListener("mouseleave", hideTip);
      shape.addEventListener("blur", hideTip);
      const open = function () {
        if (n.kind === "neuron") location.href = "/neurons/" + n.neuron_id;
        else if (n.kind === "supernode") { collapsed.delete(n.index); draw(); drawGroups(); }
      };
      shape.addEventListener("click", open);
      shape.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(); });
      nodes.appendChild(shape);
      if (n.kind === "logit" || n.kind === "supernode") {
        const label = el("text", { class: "axis", x: cx, y: cy - 14, "text-anchor": "middle" });
        label.textContent = n.kind === "logit" ? JSON.stringify(n.token) : n.label;
        nodes.appendChild(label);
      }
    }
    svg.appendChild(nodes);
    holder.innerHTML = "";
    holder.appendChild(svg);
  }

  function describe(n) {
    const at = n.position != null && graph.tokens[Math.round(n.position)] != null
      ? " at " + tok(graph.tokens[Math.round(n.position)]) + " (position " + n.position + ")" : "";
    if (n.kind === "supernode") {
      const ids = [...new Set(n.members.map((m) => m.neuron_id))];
      return "<b>" + esc(n.label) + "</b> supernode: " + n.members.length + " nodes, " + esc(ids.join(", ")) +
        "<br>influence " + n.influence.toPrecision(3) + " · click to expand";
    }
    if (n.kind === "neuron") {
      return "<b>" + esc(n.neuron_id) + "</b>" + at + "<br>activation " + n.value.toPrecision(4) +
        " · influence " + n.influence.toPrecision(3) + " · rank " + n.rank +
        (n.total_effect != null ? " · total effect " + n.total_effect.toPrecision(3) : "") +
        '<div class="expl">' + (n.explanation ? esc(n.explanation) : '<span class="muted">no explanation stored</span>') + "</div>" +
        (n.cluster ? '<div class="muted">cluster: ' + esc(n.cluster) + "</div>" : "");
    }
    if (n.kind === "logit") {
      return "<b>logit " + tok(n.token) + "</b>" + (n.is_target ? " (target)" : "") + "<br>p " + fmt(n.probability || 0) +
        " · demeaned logit " + n.value.toPrecision(4);
    }
    if (n.kind === "embedding") return "<b>embedding</b> of " + tok(n.token) + " (position " + n.position + ")";
    return "<b>rest of L" + n.layer + "</b>" + at + ": the neurons not computed as rows";
  }

  function showTip(n, ev) {
    tip.innerHTML = describe(n);
    tip.hidden = false;
    const box = holder.parentElement.getBoundingClientRect();
    const r = ev.target.getBoundingClientRect();
    // beside the node, on its left when the card has no room on its right
    let left = r.right - box.left + 8;
    if (left + tip.offsetWidth > box.width) left = r.left - box.left - tip.offsetWidth - 8;
    tip.style.left = Math.max(0, left) + "px";
    tip.style.top = Math.max(0, r.top - box.top - 4) + "px";
  }
  function hideTip() { tip.hidden = true; }

  function groupNeurons(sn) {
    const byId = new Map(graph.nodes.map((n) => [n.node_id, n]));
    return [...new Set(sn.slice(1).map((id) => byId.get(id)).filter(Boolean).map((n) => n.neuron_id).filter(Boolean))];
  }

  function drawGroups() {
    const sns = graph.supernodes || [];
    if (!sns.length) {
      groupsBox.innerHTML = '<p class="muted">' + (request.group
        ? "None: no map cluster holds two nodes of this graph (supernodes need the map: neuronatlas map)."
        : "Supernodes are off (tick \u201csupernodes by map cluster\u201d).") + "</p>";
      return;
    }
    groupsBox.innerHTML = sns.map(function (sn, i) {
      const ids = groupNeurons(sn);
      return '<div class="sn" data-sn="' + i + '"><div class="sn-head"><b>' + esc(sn[0]) + '</b> <span class="muted">' +
        (sn.length - 1) + " nodes, " + ids.length + " neuron" + (ids.length === 1 ? "" : "s") + "</span></div>" +
        '<div class="sn-ids">' + ids.map((id) => '<a href="/neurons/' + esc(id) + '">' + esc(id) + "</a>").join(" ") + "</div>" +
        '<div class="row"><button type="button" class="ghost sn-toggle">' + (collapsed.has(i) ? "Expand" : "Collapse") +
        '</button><button type="button" class="sn-steer"' + (ids.length > MAX_GROUP ? " disabled" : "") +
        ">Steer this supernode</button></div><div class=\"sn-out\">" + (steered.get(i) || "") + "</div></div>";
    }).join("");
    groupsBox.querySelectorAll(".sn").forEach(function (box) {
      const i = Number(box.dataset.sn);
      box.querySelector(".sn-toggle").addEventListener("click", function () {
        if (collapsed.has(i)) collapsed.delete(i); else collapsed.add(i);
        draw(); drawGroups();
      });
      box.querySelector(".sn-steer").addEventListener("click", () => steer(i, box.querySelector(".sn-out")));
    });
  }

  // Ablate the supernode's neurons (at every position) and look at the answer.
  async function steer(i, out) {
    const ids = groupNeurons(graph.supernodes[i]);
    out.textContent = "Ablating " + ids.join(", ") + "…";
    let body;
    try {
      body = await post("/api/steer", { text: graph.prompt, neurons: ids, mode: "ablate", target: graph.target, new_tokens: 10 });
    } catch (e) { out.textContent = e.message; return; }
    const t = body.target;
    const cls = t.change > 0 ? "up" : t.change < 0 ? "down" : "";
    const html = '<div class="sn-target">' + tok(t.token) + " p " + fmt(t.before) + " → " + fmt(t.after) +
      ' (<span class="num ' + cls + '">' + (t.change > 0 ? "+" : "") + fmt(t.change) + "</span>), rank " +
      t.rank_before + " → " + t.rank_after + "</div>" +
      '<div class="lbl">continuation as it is</div><div class="sn-before na-heat">' + esc(body.continuation.before.text) + "</div>" +
      '<div class="lbl">with the supernode ablated</div><div class="sn-after na-heat">' + esc(body.continuation.after.text) + "</div>";
    steered.set(i, html);
    out.innerHTML = html;
  }

  function drawLogits() {
    const logits = graph.nodes.filter((n) => n.kind === "logit").sort((a, b) => (b.probability || 0) - (a.probability || 0));
    logitsBox.innerHTML = '<table class="tbl"><thead><tr><th>token</th><th class="num">p</th></tr></thead><tbody>' +
      logits.map((n) => "<tr" + (n.is_target ? ' class="target"' : "") + "><td><code>" + tok(n.token) + '</code></td><td class="num">' +
        fmt(n.probability || 0) + "</td></tr>").join("") + "</tbody></table>" +
      '<p class="muted">Pick one in \u201cnext token\u201d to trace it alone.</p>';
  }

  download.addEventListener("click", async function () {
    if (!request) return;
    let doc;
    try { doc = await post("/api/trace/neuronpedia", request); } catch (e) { msg.textContent = e.message; return; }
    const blob = new Blob([JSON.stringify(doc)], { type: "application/json" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "trace-" + (graph.target || "graph").replace(/[^A-Za-z0-9]+/g, "_").replace(/^_|_$/g, "") + ".json";
    document.body.appendChild(a);
    a.click();
    a.remove();
  });
  target.addEventListener("change", run);
  form.addEventListener("submit", function (ev) { ev.preventDefault(); run(); });
  if (form.dataset.run === "1") run();
})();
