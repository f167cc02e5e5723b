// The neuron page: record tabs, permalink, keyboard navigation and the live test box.
(function () {
  "use strict";
  const $ = (s) => document.querySelector(s);

  document.querySelectorAll(".tabs button").forEach(function (btn) {
    btn.addEventListener("click", function () {
      document.querySelectorAll(".tabs button").forEach((b) => b.classList.toggle("on", b === btn));
      document.querySelectorAll(".tab-body").forEach(function (body) {
        body.hidden = body.dataset.body !== btn.dataset.tab;
      });
    });
  });

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
  function heat(tokens, values, scale) {
    const spans = tokens.map(function (tok, i) {
      const v = values[i];
      const a = v == null || !scale ? 0 : Math.min(1, Math.abs(v) / scale);
      const bg = v == null ? "transparent" : v >= 0 ? "rgba(255,140,0," + a.toFixed(3) + ")"
        : "rgba(80,140,255," + (0.6 * a).toFixed(3) + ")";
      const label = v == null ? "NaN" : v.toFixed(3);
      return '<span class="na-tok" style="background:' + bg + '" data-v="' + label + '" title="' + label + '">' +
        esc(tok.replace(/\n/g, "⏎\n").replace(/\t/g, "⇥")) + "</span>";
    });
    return '<div class="na-heat">' + spans.join("") + "</div>";
  }

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
      let html = '<div class="lbl">activation (max ' + liveMax.toFixed(3) + ")</div>" + heat(body.tokens, body.activations, scale);
      if (body.n2g_prediction) {
        html += '<div class="lbl">N2G prediction</div>' + heat(body.tokens, body.n2g_prediction, scale);
      } else {
        html += '<div class="lbl">No N2G graph for this neuron, so no prediction.</div>';
      }
      out.innerHTML = html;
      msg.textContent = body.tokens.length + " tokens" + (body.truncated ? " (the text was cut here)." : ".");
    });
  }
})();
