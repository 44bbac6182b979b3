// Small behaviours marked in the markup, so no page needs an inline event handler (the
// Content-Security-Policy allows no inline script): [data-print] prints the page,
// [data-select-on-focus] selects its text when focused (a token to copy).
(function () {
  "use strict";
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
  document.querySelectorAll("[data-select-on-focus]").forEach(function (field) {
    field.addEventListener("focus", function () { field.select(); });
  });
})();
