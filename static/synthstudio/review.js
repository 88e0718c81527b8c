// The review workbench's keyboard and timing. No dependencies besides htmx; the page works without it too
// (every control is a plain form control; this adds hotkeys and measures time spent per item).
(function () {
  "use strict";

  let shownAt = performance.now();

  function workbench() {
    return document.getElementById("workbench");
  }

  function isTyping(target) {
    if (!target || !target.tagName) return false;
    const tag = target.tagName.toLowerCase();
    return tag === "textarea" || tag === "select" || (tag === "input" && !["radio", "checkbox", "button", "submit"].includes(target.type)) || target.isContentEditable;
  }

  function openPanel(id, focusSelector) {
    const panel = document.getElementById(id);
    if (!panel) return;
    panel.open = true;
    const field = panel.querySelector(focusSelector);
    if (field) {
      field.focus();
      if (field.tagName.toLowerCase() === "textarea") field.setSelectionRange(field.value.length, field.value.length);
    }
  }

  function settling() {
    return document.querySelector(".htmx-swapping, .htmx-settling, .htmx-added") !== null;
  }

  // A key pressed while htmx is still swapping the next item in would reach a form htmx has not taken over
  // yet (a full-page submit): run it once the swap has settled.
  function whenSettled(action) {
    if (!settling()) return action();
    document.addEventListener("htmx:afterSettle", function () { action(); }, { once: true });
    return true;
  }

  function click(selector) {
    const root = workbench();
    const element = root && root.querySelector(selector);
    if (element && !element.disabled) {
      element.click();
      return true;
    }
    return false;
  }

  function busy() {
    const form = document.getElementById("answer-form");
    return form && form.classList.contains("htmx-request");
  }

  document.addEventListener("keydown", function (event) {
    if (!workbench()) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (isTyping(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const key = event.key;
    let handled = true;
    if (/^[1-9]$/.test(key)) {
      // a label, or (once the label queue is empty) the pair task's first / second / tie
      handled = !busy() && whenSettled(function () {
        return click('button.wb-label[data-hotkey="' + key + '"]') || click('#pair-form button[data-key="' + key + '"]');
      });
    } else if (key === "Enter") {
      // Enter on a focused button keeps its own meaning; elsewhere it accepts the suggestion.
      if (event.target && event.target.tagName && ["button", "a", "summary"].includes(event.target.tagName.toLowerCase())) return;
      handled = !busy() && whenSettled(function () { return click("button.wb-label[data-suggested]"); });
    } else if (key === "e" || key === "E") {
      openPanel("edit-panel", "textarea");
    } else if (key === "f" || key === "F") {
      openPanel("flag-panel", "select");
    } else if (key === "c" || key === "C") {
      openPanel("comment-panel", "textarea");
    } else if (key === "s" || key === "S") {
      openPanel("skip-panel", "input");
    } else if (key === "u" || key === "U") {
      handled = click("#undo-button");
    } else if (/^[a-dA-D]$/.test(key)) {
      const radio = document.querySelector('input[data-rating="' + key.toUpperCase() + '"]');
      if (radio) {
        radio.checked = true;
      } else {
        handled = false;
      }
    } else if (key === "?") {
      toggleHelp();
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  });

  function toggleHelp() {
    const help = document.getElementById("wb-help");
    const toggle = document.getElementById("help-toggle");
    if (!help) return;
    help.hidden = !help.hidden;
    if (toggle) toggle.setAttribute("aria-expanded", String(!help.hidden));
  }

  document.addEventListener("click", function (event) {
    if (event.target && event.target.closest && event.target.closest("#help-toggle")) toggleHelp();
  });

  // The client measures the time on the item (the server bounds it by what it saw since the reservation).
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.elt && event.detail.elt.id === "answer-form") {
      event.detail.parameters["seconds_spent"] = ((performance.now() - shownAt) / 1000).toFixed(2);
    }
  });
  document.addEventListener("submit", function (event) {
    const field = event.target.querySelector && event.target.querySelector("#seconds-spent");
    if (field) field.value = ((performance.now() - shownAt) / 1000).toFixed(2);
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "workbench") {
      shownAt = performance.now();
      const next = workbench();
      if (next) next.focus({ preventScroll: true });
    }
  });
  // A failed request (network error, 5xx) leaves the form as it was, with its submission id: sending it again
  // stores one answer.
  document.addEventListener("htmx:sendError", function () {
    const root = workbench();
    if (root && !root.querySelector(".wb-network")) {
      const note = document.createElement("p");
      note.className = "wb-flash wb-error wb-network";
      note.setAttribute("role", "alert");
      note.textContent = "The network failed; your answer was not confirmed. Press the label again to retry.";
      root.insertBefore(note, root.firstChild.nextSibling);
    }
  });
})();
