// The neuron page's steering panel: POST /api/steer (this neuron, or it and the other ids
// typed in "with other neurons"), then the KL per token as a heat-map, the top next-token
// changes of the token picked in it, the target token's probability if one was typed, and
// both greedy continuations.
(function () {
  "use strict";
  const form = document.getElementById("steer-form");
  if (!form) return;
  const text = document.getElementById("steer-text");
  const mode = document.getElementById("steer-mode");
  const value = document.getElementById("steer-value");
  const msg = document.getElementById("steer-msg");
  const out = document.getElementById("steer-out");
  const also = document.getElementById("steer-also");
  const target = document.getElementById("steer-target");
  const DEFAULTS = { clamp: Number(form.dataset.max || 0) || 1, scale: 2 };

  function esc(s) {
    return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  }
  function shown(tok) {
    return esc(String(tok).replace(/\n/g, "⏎\n").replace(/\t/g, "⇥"));
  }
  function fmt(p) { return Math.abs(p) >= 0.001 || p === 0 ? p.toFixed(3) : p.toExponential(1); }

  mode.addEventListener("change", function () {
    const needs = mode.value !== "ablate";
    value.disabled = !needs;
    if (needs && (value.value === "" || value.dataset.auto === "1")) {
      value.value = String(Number(DEFAULTS[mode.value].toPrecision(4)));
      value.dataset.auto = "1";
    }
    if (!needs) { value.value = ""; value.dataset.auto = "1"; }
  });
  value.addEventListener("input", function () { value.dataset.auto = "0"; });

  // KL ≥ 0: one colour, alpha ∝ KL / the largest KL of the text.
  function klHeat(tokens, kl) {
    const top = Math.max(0, ...kl) || 1;
    return '<div class="na-heat steer-kl">' + tokens.map(function (tok, i) {
      const a = Math.min(1, kl[i] / top);
      return '<span class="na-tok" tabindex="0" data-i="' + i + '" data-v="' + kl[i].toFixed(4) +
        '" title="KL ' + kl[i].toFixed(4) + '" style="background:rgba(150,60,220,' + (0.75 * a).toFixed(3) +
        ')">' + shown(tok) + "</span>";
    }).join("") + "</div>";
  }

  function changes(body, i) {
    const rows = body.top[i].map(function (c) {
      const cls = c.change > 0 ? "up" : c.change < 0 ? "down" : "";
      return "<tr><td><code>" + esc(JSON.stringify(c.token)) + "</code></td><td class=\"num\">" + fmt(c.before) +
        '</td><td class="num">' + fmt(c.after) + '</td><td class="num ' + cls + '">' +
        (c.change > 0 ? "+" : "") + fmt(c.change) + "</td></tr>";
    }).join("");
    return '<div class="lbl">next token after <code>' + esc(JSON.stringify(body.tokens[i])) +
      "</code> (" + (body.neurons.length > 1 ? esc(body.neuron) + " " : "") + "activation " +
      body.activations[i].toFixed(3) + ", KL " + body.kl[i].toFixed(4) +
      ')</div><table class="tbl steer-top"><thead><tr><th>token</th><th>before</th><th>after</th>' +
      "<th>change</th></tr></thead><tbody>" + rows + "</tbody></table>";
  }

  function continuation(label, c, id) {
    return '<div class="lbl">' + label + '</div><div class="na-heat steer-cont" id="' + id + '">' +
      (c.tokens.length ? shown(c.text) : '<span class="muted">(no tokens)</span>') + "</div>";
  }

  function targetLine(t) {
    if (!t) return "";
    const cls = t.change > 0 ? "up" : t.change < 0 ? "down" : "";
    return '<div class="steer-target" id="steer-target-out">target <code>' + esc(JSON.stringify(t.token)) +
      "</code> as the next token after the text: p " + fmt(t.before) + " → " + fmt(t.after) +
      ' (<span class="num ' + cls + '">' + (t.change > 0 ? "+" : "") + fmt(t.change) + "</span>), rank " +
      t.rank_before + " → " + t.rank_after + "</div>";
  }

  function show(body) {
    const peak = body.kl.indexOf(Math.max(...body.kl));
    const edit = body.mode + (body.value == null ? "" : " " + body.value);
    const who = body.neurons.length > 6
      ? body.neurons.slice(0, 6).join(", ") + " and " + (body.neurons.length - 6) + " more"
      : body.neurons.join(", ");
    out.innerHTML = targetLine(body.target) +
      '<div class="lbl">KL(before ‖ after) of the next-token distribution per token, ' +
      esc(who) + " " + esc(edit) + " (max " + body.kl[peak].toFixed(4) +
      "; pick a token for its top changes)</div>" + klHeat(body.tokens, body.kl) +
      '<div id="steer-changes">' + changes(body, peak) + "</div>" +
      continuation("greedy continuation as it is", body.continuation.before, "steer-before") +
      continuation("with the change", body.continuation.after, "steer-after");
    out.querySelectorAll(".steer-kl .na-tok").forEach(function (span) {
      const pick = function () {
        out.querySelectorAll(".steer-kl .na-tok.on").forEach((s) => s.classList.remove("on"));
        span.classList.add("on");
        document.getElementById("steer-changes").innerHTML = changes(body, Number(span.dataset.i));
      };
      span.addEventListener("click", pick);
      span.addEventListener("keydown", (ev) => { if (ev.key === "Enter") pick(); });
    });
    out.querySelector('.steer-kl .na-tok[data-i="' + peak + '"]').classList.add("on");
  }

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    if (!text.value.trim()) { msg.textContent = "Type some text first."; return; }
    const req = { text: text.value, mode: mode.value };
    const others = also.value.split(/[\s,]+/).filter(Boolean);
    if (others.length) req.neurons = [form.dataset.neuron, ...others];
    else req.neuron = form.dataset.neuron;
    if (target.value !== "") req.target = target.value;  // spaces kept: " Paris" is one token
    if (mode.value !== "ablate") {
      if (value.value === "" || !isFinite(Number(value.value))) { msg.textContent = "Give a value to " + mode.value + " to."; return; }
      req.value = Number(value.value);
    }
    msg.textContent = "Running…";
    const res = await fetch("/api/steer", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(req),
    });
    const body = await res.json();
    if (!res.ok) { msg.textContent = body.error ? body.error.message : "Failed (" + res.status + ")"; out.innerHTML = ""; return; }
    msg.textContent = body.tokens.length + " tokens; the largest KL is " + Math.max(...body.kl).toFixed(4) + ".";
    show(body);
  });
})();
