// The promotion request form: refresh the readiness checklist (rendered by the server) when
// the version or the target changes. Without JavaScript the checklist shows the first choice
// and the server checks again on submit.
(function () {
  "use strict";
  var form = document.getElementById("request-form");
  if (!form) return;
  var box = document.getElementById("checklist");
  var url = form.getAttribute("data-checks-url");

  function refresh() {
    var params = new URLSearchParams({model: form.elements.model.value,
                                      version: form.elements.version.value,
                                      target: form.elements.target.value});
    box.setAttribute("aria-busy", "true");
    fetch(url + "?" + params.toString(), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        box.removeAttribute("aria-busy");
        if (html === null) return;
        box.innerHTML = "<h2>Readiness checks</h2>" + html;
      });
  }
  form.elements.version.addEventListener("change", refresh);
  form.elements.target.addEventListener("change", refresh);
})();
