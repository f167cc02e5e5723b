// Shared by every page: the header's "search or go to id" box.
(function () {
  "use strict";
  const ID = /^\s*(?:[Ll](\d{1,3})[Nn](\d{1,6})|(\d{1,3}):(\d{1,6}))\s*$/;
  window.naFormatId = function (layer, neuron) {
    return "L" + String(layer).padStart(2, "0") + "N" + String(neuron).padStart(4, "0");
  };
  window.naParseId = function (text) {
    const m = ID.exec(text || "");
    if (!m) return null;
    return window.naFormatId(Number(m[1] ?? m[3]), Number(m[2] ?? m[4]));
  };
  const form = document.getElementById("goto-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      const id = window.naParseId(document.getElementById("goto").value);
      if (id) { ev.preventDefault(); location.href = "/neurons/" + id; }
    });
  }
})();
