// "Compare pairs" page: keys 1 / 2 / 3 pick response 1, response 2 or a tie. (The review workbench has its own
// keys in review.js.) A static file: the Content-Security-Policy allows no inline <script>.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey) return;
    const button = document.querySelector('#pair-form button[data-key="' + event.key + '"]');
    if (button) {
      event.preventDefault();
      button.click();
    }
  });
})();
