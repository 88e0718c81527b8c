// Small behaviours every page may use, declared with data-* attributes instead of inline on*= handlers (the
// Content-Security-Policy allows no inline script).
(function () {
  "use strict";
  // <select data-autosubmit>: submit its form as soon as the choice changes.
  document.addEventListener("change", function (event) {
    const field = event.target;
    if (field.matches && field.matches("[data-autosubmit]") && field.form) field.form.requestSubmit();
  });
})();
