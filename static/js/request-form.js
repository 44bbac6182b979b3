// The promotion request form: refresh the readiness checklist (rendered by the server) when
// the version or the target changes. Only the answer to the latest choice is shown: answers
// may arrive out of order, and an earlier one must not overwrite a later one. Without
// JavaScript the checklist shows the first choice and the server checks again on submit.
(function () {
  "use strict";
  var form = document.getElementById("request-form");
  if (!form) return;
  var box = document.getElementById("checklist");
  var url = form.getAttribute("data-checks-url");
  var latest = 0;

  function refresh() {
    var mine = ++latest;
    var params = new URLSearchParams({model: form.elements.model.value,
                                      version: form.elements.version.value,
                                      target: form.elements.target.value});
    box.setAttribute("aria-busy", "true");
    fetch(url + "?" + params.toString(), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (mine !== latest) return;  // a later choice is on its way
        box.removeAttribute("aria-busy");
        if (html !== null) box.innerHTML = "<h2>Readiness checks</h2>" + html;
      })
      .catch(function () { if (mine === latest) box.removeAttribute("aria-busy"); });
  }
  form.elements.version.addEventListener("change", refresh);
  form.elements.target.addEventListener("change", refresh);
  // The choice may have changed before this script ran (a quick hand, a slow page) or been
  // restored by the browser on Back: show the checklist for what the form holds now.
  refresh();
})();
