// The neuron page: what the server left out of the first view (histogram, similar neurons,
// further records, fetched from the endpoints the page names once it is shown), record tabs,
// permalink, keyboard navigation and the live test box. Without JavaScript the page links to
// its `?view=full` twin instead.
(function () {
  "use strict";
  const $ = (s) => document.querySelector(s);

  const link = $("#permalink");
  if (link) {
    link.addEventListener("click", async function () {
      const url = location.origin + link.dataset.url;
      try { await navigator.clipboard.writeText(url); link.textContent = "Copied"; }
      catch (e) { window.prompt("Permalink", url); }
      setTimeout(() => { link.textContent = "Copy link"; }, 1500);
    });
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.target.closest("input, textarea, select") || ev.metaKey || ev.ctrlKey || ev.altKey) return;
    const rel = { ArrowLeft: "prev", ArrowRight: "next" }[ev.key];
    if (rel) { const a = document.querySelector('a[rel="' + rel + '"]'); if (a) location.href = a.href; }
    if (ev.key === "r") location.href = "/random";
  });

  function esc(s) {
    return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  }
  // Colours, labels and markup as read/render.py draws them on the server (record_row,
  // heatmap_html, histogram_svg), so a lazily loaded part looks like a server-rendered one.
  function colour(v, scale) {
    if (v == null || !(scale > 0) || !isFinite(v)) return "transparent";
    const a = Math.min(1, Math.abs(v) / scale);
    return v >= 0 ? "rgba(255,140,0," + a.toFixed(3) + ")" : "rgba(80,140,255," + (0.6 * a).toFixed(3) + ")";
  }
  function fixed(v, digits) {  // as Python's f"{v:.3f}", which keeps the sign of -0.0
    return (Object.is(v, -0) ? "-" : "") + v.toFixed(digits);
  }
  function heat(tokens, values, scale, peak) {
    if (scale == null) scale = Math.max(0, ...values.filter((v) => v != null && isFinite(v)).map(Math.abs));
    const spans = tokens.map(function (tok, i) {
      const v = values[i];
      const label = v == null ? "NaN" : fixed(v, 3);
      return '<span class="' + (i === peak ? "na-tok na-peak" : "na-tok") + '" style="background:' +
        colour(v, scale) + '" data-v="' + label + '" title="' + label + '">' +
        esc(tok.replace(/\n/g, "⏎\n").replace(/\t/g, "⇥")) + "</span>";
    });
    return '<div class="na-heat">' + spans.join("") + "</div>";
  }
  // The first view's excerpts come as bare token spans with their values in `data-f32` (or
  // `data-f64`: little-endian, base64; read/first_view.py); painting them gives the spans
  // `heat` draws.
  function values(box) {
    const wide = box.dataset.f64 != null, bin = atob(wide ? box.dataset.f64 : box.dataset.f32);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    // typed arrays read the host's byte order: little-endian in every browser there is
    return Array.from(wide ? new Float64Array(bytes.buffer) : new Float32Array(bytes.buffer));
  }
  function paint(box, scale) {
    const vals = values(box), spans = box.children;
    if (scale == null) scale = Math.max(0, ...vals.filter((v) => isFinite(v)).map(Math.abs));
    for (let i = 0; i < spans.length; i++) {
      const v = vals[i], label = isNaN(v) ? "NaN" : fixed(v, 3), span = spans[i];
      span.className = span.className ? "na-tok na-peak" : "na-tok";
      span.style.background = colour(v, scale);
      span.dataset.v = label;
      span.title = label;
    }
    delete box.dataset.f32;
    delete box.dataset.f64;
  }
  function recordRow(r, scale) {
    const head = r.max_activation == null ? "—" : fixed(r.max_activation, 2);
    return '<div class="na-row"><span class="na-max">' + head + "</span>" +
      heat(r.tokens, r.activations, scale, r.peak_index) + "</div>";
  }
  function g3(x) { return String(Number(x.toPrecision(3))); }
  function histogramSvg(hist) {
    const counts = hist.counts, edges = hist.edges, width = 560, height = 140, padB = 18, padL = 4;
    if (!counts.length) return '<p class="muted">No stored activations.</p>';
    const top = Math.log1p(Math.max(...counts)), barW = (width - padL) / counts.length;
    const bars = counts.map(function (c, i) {
      const h = c === 0 ? 0 : Math.max(1, (height - padB) * Math.log1p(c) / top);
      return '<rect x="' + (padL + i * barW).toFixed(1) + '" y="' + (height - padB - h).toFixed(1) +
        '" width="' + Math.max(barW - 1, 1).toFixed(1) + '" height="' + h.toFixed(1) + '" class="bar"><title>' +
        esc(g3(edges[i]) + " to " + g3(edges[i + 1]) + ": " + c) + "</title></rect>";
    });
    return '<svg class="hist" viewBox="0 0 ' + width + " " + height + '" role="img" ' +
      'aria-label="histogram of stored activations">' + bars.join("") +
      '<text x="' + padL + '" y="' + (height - 4) + '" class="axis">' + g3(edges[0]) + "</text>" +
      '<text x="' + width + '" y="' + (height - 4) + '" text-anchor="end" class="axis">' +
      g3(edges[edges.length - 1]) + "</text></svg>";
  }
  function withCode(message) {  // `backticked` commands as <code>, as the server's filter
    return esc(message || "").split("`").map((p, i) => (i % 2 ? "<code>" + p + "</code>" : p)).join("");
  }
  async function getJson(url) {
    const res = await fetch(url, { headers: { accept: "application/json" } });
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON: reported below */ }
    if (!res.ok) {
      throw new Error(body && body.error ? body.error.message : "failed (HTTP " + res.status + ")");
    }
    return body;
  }
  function failed(box, exc) {
    box.innerHTML = '<p class="notbuilt">' + withCode(exc.message) + "</p>";
  }

  function loadHistogram() {
    const box = $("#hist");
    if (!box) return Promise.resolve();
    return getJson(box.dataset.src).then(function (hist) {
      box.innerHTML = histogramSvg(hist);
    }, (exc) => failed(box, exc)).finally(() => box.classList.remove("lazy"));
  }

  function loadSimilar() {
    const box = $("#similar-body.lazy");
    if (!box) return Promise.resolve();
    return getJson(box.dataset.src + "?k=10").then(function (sim) {
      let html = "";
      [["by_embedding", "by explanation"], ["by_tokens", "by tokens"]].forEach(function ([key, label]) {
        if (!sim[key].length) return;
        html += "<h3>" + label + '</h3><ul class="results compact">' + sim[key].map((s) =>
          '<li><a href="/neurons/' + esc(s.id) + '">' + esc(s.id) + "</a>" +
          (s.similarity == null ? "" : ' <span class="sim">' + s.similarity.toFixed(2) + "</span>") +
          ' <span class="expl">' + esc(s.explanation || "") + "</span></li>").join("") + "</ul>";
      });
      box.innerHTML = html || '<p class="notbuilt">' + box.dataset.empty + "</p>";
    }, (exc) => failed(box, exc)).finally(() => box.classList.remove("lazy"));
  }

  // Records: each tab body knows how many it shows, its category's total and its endpoint;
  // a tab fills itself up to one page (50) when first shown, then "Show more" pages on.
  const records = $("#records");
  const scale = records && records.dataset.scale !== "" ? Number(records.dataset.scale) : null;
  const pageSize = records ? Number(records.dataset.page) : 50;
  const pending = new Map();
  document.querySelectorAll(".na-heat[data-f32], .na-heat[data-f64]").forEach((box) => paint(box, scale));

  function moreRecords(body, limit) {
    const shown = Number(body.dataset.shown), total = Number(body.dataset.total);
    if (shown >= total) return Promise.resolve();
    if (pending.has(body)) return pending.get(body);
    body.classList.add("loading");
    const url = body.dataset.src + "&offset=" + shown + "&limit=" + Math.min(limit, total - shown);
    const p = getJson(url).then(function (page) {
      body.querySelector(".rows").insertAdjacentHTML("beforeend",
        page.records.map((r) => recordRow(r, scale)).join(""));
      body.dataset.shown = String(shown + page.records.length);
      body.dataset.filled = "1";
      moreButton(body);
    }, function (exc) {
      const row = body.querySelector(".more-row");
      if (row) row.insertAdjacentHTML("beforeend", ' <span class="notbuilt">' + withCode(exc.message) + "</span>");
    }).finally(function () { pending.delete(body); body.classList.remove("loading"); });
    pending.set(body, p);
    return p;
  }
  function moreButton(body) {
    const shown = Number(body.dataset.shown), total = Number(body.dataset.total);
    const row = body.querySelector(".more-row");
    if (!row) return;
    if (shown >= total) { row.remove(); return; }
    row.innerHTML = "Showing " + shown + " of " + total + '. <button type="button" class="ghost more">Show ' +
      Math.min(pageSize, total - shown) + " more</button>";
    row.querySelector("button").addEventListener("click", () => moreRecords(body, pageSize));
  }
  function fill(body) {  // the first page of a tab: up to pageSize records in all
    if (body.dataset.filled) return Promise.resolve();
    return moreRecords(body, pageSize - Number(body.dataset.shown));
  }

  const tabs = document.querySelectorAll(".tabs button");
  tabs.forEach(function (btn) {
    const body = document.querySelector('.tab-body[data-body="' + btn.dataset.tab + '"]');
    btn.addEventListener("click", function () {
      tabs.forEach((b) => b.classList.toggle("on", b === btn));
      document.querySelectorAll(".tab-body").forEach(function (other) {
        other.hidden = other !== body;
      });
      fill(body);
    });
    // start fetching when a reader points at a tab, so the click finds it loaded
    btn.addEventListener("pointerenter", () => fill(body), { once: true });
    btn.addEventListener("focus", () => fill(body), { once: true });
  });
  document.querySelectorAll(".tab-body").forEach(function (body) {
    if (Number(body.dataset.shown) >= pageSize) body.dataset.filled = "1";
    moreButton(body);
  });

  // After the first paint: the histogram, similar neurons and the open tab's first page.
  // `data-lazy="done"` on <html> (and window.naLazyDoneAt) marks when they are all in.
  const open = document.querySelector(".tab-body:not([hidden])");
  Promise.allSettled([loadHistogram(), loadSimilar(), open ? fill(open) : null]).then(function () {
    window.naLazyDoneAt = performance.now();
    document.documentElement.dataset.lazy = "done";
  });

  const logits = $("#logits-btn");
  if (logits) {
    logits.addEventListener("click", async function () {
      logits.disabled = true; logits.textContent = "Computing…";
      const res = await fetch("/api/neurons/" + logits.dataset.neuron + "/logit_effects?k=12");
      const body = await res.json();
      const box = $("#logits");
      if (!res.ok) { box.innerHTML = '<p class="notbuilt">' + esc(body.error.message) + "</p>"; return; }
      const list = (rows) => rows.map((r) => '<span class="tag" title="' + r.effect.toFixed(3) + '">' +
        esc(String(r.token).replace(/ /g, "␣").replace(/\n/g, "⏎")) + "</span>").join(" ");
      box.innerHTML = '<p><b>promotes</b> ' + list(body.promoted) + '</p><p><b>suppresses</b> ' +
        list(body.suppressed) + "</p>";
    });
  }

  const form = $("#live-form");
  if (form) {
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const text = $("#live-text").value;
      const msg = $("#live-msg"), out = $("#live-out");
      if (!text.trim()) { msg.textContent = "Type some text first."; return; }
      msg.textContent = "Running…";
      const res = await fetch("/api/activate", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ text: text, neuron: form.dataset.neuron }),
      });
      const body = await res.json();
      if (!res.ok) { msg.textContent = body.error ? body.error.message : "Failed (" + res.status + ")"; out.innerHTML = ""; return; }
      const pageMax = Number(form.dataset.max || 0);
      const liveMax = Math.max(0, ...body.activations.filter((v) => v != null));
      const scale = Math.max(pageMax, liveMax) || 1;
      let html = '<div class="lbl">activation (max ' + liveMax.toFixed(3) + ")</div>" + heat(body.tokens, body.activations, scale, null);
      if (body.n2g_prediction) {
        html += '<div class="lbl">N2G prediction</div>' + heat(body.tokens, body.n2g_prediction, scale, null);
      } else {
        html += '<div class="lbl">No N2G graph for this neuron, so no prediction.</div>';
      }
      out.innerHTML = html;
      msg.textContent = body.tokens.length + " tokens" + (body.truncated ? " (the text was cut here)." : ".");
    });
  }
})();
