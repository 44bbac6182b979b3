// Live markdown preview (rendered and sanitised by the server, like the card page) and the
// completeness meter, for the card editor. Plain JavaScript; the form works without it.
(function () {
  "use strict";
  var script = document.currentScript;
  var previewUrl = script && script.getAttribute("data-preview-url");
  var csrf = document.querySelector("input[name=csrfmiddlewaretoken]");
  var timers = {};

  function preview(area) {
    var target = document.getElementById(area.getAttribute("data-preview"));
    if (!target || !previewUrl) return;
    fetch(previewUrl, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json",
                "X-CSRFToken": csrf ? csrf.value : ""},
      body: JSON.stringify({text: area.value})
    }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) target.innerHTML = data.html; })
      .catch(function () {});
  }

  function meter() {
    var fields = document.querySelectorAll(".section-field[data-required=true] textarea");
    var done = 0;
    fields.forEach(function (f) { if (f.value.trim()) done += 1; });
    var percent = fields.length ? Math.round(100 * done / fields.length) : 100;
    var bar = document.getElementById("completeness");
    if (bar) {
      bar.value = percent;
      bar.textContent = percent + "%";
    }
    var text = document.getElementById("completeness-text");
    if (text) text.textContent = percent + "% of the required sections written.";
  }

  document.querySelectorAll("textarea[data-preview]").forEach(function (area) {
    preview(area);
    area.addEventListener("input", function () {
      meter();
      clearTimeout(timers[area.id]);
      timers[area.id] = setTimeout(function () { preview(area); }, 300);
    });
  });
  meter();
})();
