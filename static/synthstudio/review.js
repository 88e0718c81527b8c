// The review workbench's keyboard and timing. No dependencies besides htmx; the page works without it too
// (every control is a plain form control; this adds hotkeys and measures time spent per item).
//
// The keyboard model:
// - While focus is in a text field (text input, textarea, select, contenteditable) no shortcut fires: every key
//   is typing. `Esc` leaves the field and closes its panel (what was typed in the answer form stays and goes
//   with the answer; the panel's summary says "changed"). `Enter` in a one-line field of the answer form (the
//   flag note) leaves the field too: it would otherwise submit the form with its first label. `Enter` in the
//   skip reason skips.
// - E / F / C / S open the edit, flag, comment and skip panels and focus the panel's first visible field, never
//   a hidden one such as the CSRF token (focusing that fails and leaves the typed keys to the shortcuts).
// - S then Enter skips without a reason: the reason is optional (Prodigy's ignore). The server still asks for
//   one, so an empty reason is sent as the form's data-default-reason.
(function () {
  "use strict";

  let shownAt = performance.now();

  // <input> types that are not typed into: shortcuts keep working while one of them has focus.
  const NOT_TEXT_INPUTS = ["radio", "checkbox", "button", "submit", "reset", "image", "hidden", "range", "color", "file"];
  const PANEL_KEYS = { e: "edit-panel", f: "flag-panel", c: "comment-panel", s: "skip-panel" };

  function workbench() {
    return document.getElementById("workbench");
  }

  function isTextField(element) {
    if (!element || element.nodeType !== 1) return false;
    if (element.isContentEditable) return true;
    const tag = element.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select") return true;
    return tag === "input" && !NOT_TEXT_INPUTS.includes((element.type || "text").toLowerCase());
  }

  function isVisible(element) {
    if (typeof element.checkVisibility === "function") return element.checkVisibility({ visibilityProperty: true });
    return element.getClientRects().length > 0;
  }

  function firstVisibleField(panel) {
    const fields = panel.querySelectorAll("input, textarea, select, [contenteditable]");
    for (const field of fields) {
      if (field.disabled || (field.type || "").toLowerCase() === "hidden") continue;
      if (isVisible(field)) return field;
    }
    return null;
  }

  // Focus back on the workbench itself (not a field), so the next key is a shortcut again.
  function focusWorkbench() {
    const root = workbench();
    if (root) root.focus({ preventScroll: true });
  }

  function openPanel(id) {
    const root = workbench();
    const panel = root && root.querySelector("#" + id);
    if (!panel) return false;
    panel.open = true;
    const field = firstVisibleField(panel);
    if (field) {
      field.focus();
      if (field.tagName.toLowerCase() === "textarea") field.setSelectionRange(field.value.length, field.value.length);
    }
    return true;
  }

  function defaultValue(field) {
    if (field.tagName.toLowerCase() !== "select") return field.defaultValue;
    const initial = Array.prototype.find.call(field.options, function (option) { return option.defaultSelected; }) || field.options[0];
    return initial ? initial.value : "";
  }

  // A panel of the answer form whose fields differ from what the page came with is marked (its content goes
  // with the answer even while the panel is closed).
  function markChanged(panel) {
    if (!panel || !panel.closest("#answer-form")) return;
    const changed = Array.prototype.some.call(panel.querySelectorAll("input, textarea, select"), function (field) {
      return isTextField(field) && field.value !== defaultValue(field);
    });
    panel.classList.toggle("wb-changed", changed);
  }

  function closePanel(panel) {
    markChanged(panel);
    panel.open = false;
  }

  function toggleHelp(show) {
    const help = document.getElementById("wb-help");
    const toggle = document.getElementById("help-toggle");
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
    if (toggle) toggle.setAttribute("aria-expanded", String(!help.hidden));
  }

  // Esc: leave the text box and close the panel it is in; elsewhere close every open panel and the key help.
  function escape(target) {
    const panel = target && target.closest ? target.closest("details.wb-panel") : null;
    if (panel) {
      closePanel(panel);
    } else {
      document.querySelectorAll("#workbench details.wb-panel[open]").forEach(closePanel);
      toggleHelp(false);
    }
    if (target && target !== document.body && typeof target.blur === "function") target.blur();
    focusWorkbench();
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
    if (event.defaultPrevented || event.isComposing) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const key = event.key;
    if (key === "Escape") {
      escape(target);
      event.preventDefault();
      return;
    }
    if (isTextField(target)) {
      // Typing: no shortcut. Enter in a one-line field of the answer form would submit it with its first label.
      if (key === "Enter" && target.tagName.toLowerCase() === "input" && target.form && target.form.id === "answer-form") {
        event.preventDefault();
        markChanged(target.closest("details.wb-panel"));
        focusWorkbench();
      }
      return;
    }
    let handled = true;
    if (/^[1-9]$/.test(key)) {
      // a label, or (once the label queue is empty) the pair task's first / second / tie
      handled = !busy() && whenSettled(function () {
        return click('button.wb-label[data-hotkey="' + key + '"]') || click('#pair-form button[data-key="' + key + '"]');
      });
    } else if (key === "Enter") {
      // Enter on a focused button keeps its own meaning; elsewhere it accepts the suggestion.
      if (target && target.tagName && ["button", "a", "summary"].includes(target.tagName.toLowerCase())) return;
      handled = !busy() && whenSettled(function () { return click("button.wb-label[data-suggested]"); });
    } else if (Object.prototype.hasOwnProperty.call(PANEL_KEYS, key.toLowerCase())) {
      handled = openPanel(PANEL_KEYS[key.toLowerCase()]);
    } else if (key === "u" || key === "U") {
      handled = click("#undo-button");
    } else if (/^[a-dA-D]$/.test(key)) {
      const radio = document.querySelector('#workbench input[data-rating="' + key.toUpperCase() + '"]');
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

  document.addEventListener("click", function (event) {
    if (event.target && event.target.closest && event.target.closest("#help-toggle")) toggleHelp();
  });
  // A panel closed with the mouse says whether it holds a change too.
  document.addEventListener("toggle", function (event) {
    const panel = event.target;
    if (panel && panel.matches && panel.matches("details.wb-panel") && !panel.open) markChanged(panel);
  }, true);

  function skipForm(element) {
    return element && element.matches && element.matches("form[data-default-reason]") ? element : null;
  }

  // The client measures the time on the item (the server bounds it by what it saw since the reservation); a
  // skip without a reason sends the form's default reason.
  document.addEventListener("htmx:configRequest", function (event) {
    const elt = event.detail.elt;
    if (elt && elt.id === "answer-form") {
      event.detail.parameters["seconds_spent"] = ((performance.now() - shownAt) / 1000).toFixed(2);
    }
    const skip = skipForm(elt);
    if (skip) {
      const reason = event.detail.parameters["reason"];
      if (!reason || !String(reason).trim()) event.detail.parameters["reason"] = skip.dataset.defaultReason;
    }
  });
  document.addEventListener("submit", function (event) {
    const field = event.target.querySelector && event.target.querySelector("#seconds-spent");
    if (field) field.value = ((performance.now() - shownAt) / 1000).toFixed(2);
    // Without htmx (it prevents the default when it sends the form itself) the field carries the default.
    const skip = skipForm(event.target);
    const reason = skip && skip.elements.namedItem("reason");
    if (skip && !event.defaultPrevented && reason && !reason.value.trim()) reason.value = skip.dataset.defaultReason;
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "workbench") {
      shownAt = performance.now();
      focusWorkbench();
    }
  });
  // A failed request (network error, 5xx) leaves the form as it was, with its submission id: sending it again
  // stores one answer.
  document.addEventListener("htmx:sendError", function () {
    const root = workbench();
    if (root && !root.querySelector(".wb-network")) {
      const note = document.createElement("p");
      note.className = "wb-flash wb-network wb-error";
      note.setAttribute("role", "alert");
      note.textContent = "The network failed; your answer was not confirmed. Press the label again to retry.";
      root.insertBefore(note, root.firstChild.nextSibling);
    }
  });
})();
