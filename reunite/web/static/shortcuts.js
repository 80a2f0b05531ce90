/* Keyboard shortcuts of the review queue (the list is on the page, "?" shows it):
   c  open the confirm step of the current card (then Enter confirms)
   r  reject the current card
   n, j  next card;  k  previous card
   ?  show or hide the list;  Esc  close the confirm step or the list
   Never while typing in a field, nor with Ctrl, Alt or Meta, nor when turned off (the list's
   checkbox, kept in localStorage: speech input types letters). The current card is marked (and
   focused, so the next Tab goes into it); a card takes over when focus enters it.
   Without JavaScript the page works as before; the hint stays hidden. */
(function () {
  "use strict";
  var shortcuts = document.getElementById("shortcuts");
  var help = document.getElementById("shortcut-help");
  var toggle = document.getElementById("shortcut-toggle");
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.candidate"));
  if (!shortcuts || !help || !toggle) {
    return;
  }
  shortcuts.hidden = false;
  var label = shortcuts.getAttribute("data-current-label") || "";
  var current = null;
  var on = document.getElementById("shortcuts-on");
  var OFF_KEY = "reunite.shortcuts";

  function enabled() {
    return !on || on.checked;
  }

  try {
    if (on && window.localStorage.getItem(OFF_KEY) === "off") {
      on.checked = false;
    }
  } catch (ignored) { /* no storage: shortcuts stay on */ }
  if (on) {
    on.addEventListener("change", function () {
      try {
        if (on.checked) {
          window.localStorage.removeItem(OFF_KEY);
        } else {
          window.localStorage.setItem(OFF_KEY, "off");
        }
      } catch (ignored) { /* no storage: for this page only */ }
    });
  }

  function mark(card, focus) {
    if (current && current !== card) {
      current.classList.remove("current");
      current.removeAttribute("aria-current");
      current.removeAttribute("data-current-label");
    }
    current = card;
    if (!card) {
      return;
    }
    card.classList.add("current");
    card.setAttribute("aria-current", "true");
    card.setAttribute("data-current-label", label);
    if (focus) {
      card.focus();
      card.scrollIntoView({ block: "start" });
    }
  }

  function move(step) {
    if (!cards.length) {
      return;
    }
    var at = cards.indexOf(current);
    var next = Math.min(Math.max(at + step, 0), cards.length - 1);
    mark(cards[next], true);
  }

  function showHelp(open) {
    help.hidden = !open;
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  }

  function confirmStep() {
    if (!current) {
      return;
    }
    var step = current.querySelector("details.confirm-step");
    if (!step) {
      var blocked = current.querySelector(".blocked");
      if (blocked) {
        blocked.scrollIntoView({ block: "center" });
      }
      return;
    }
    step.open = true;
    var final = step.querySelector(".confirm-final");
    if (final) {
      final.focus();
    }
  }

  function reject() {
    var button = current && current.querySelector("button.reject");
    if (button) {
      button.click();
    }
  }

  function close() {
    var closed = !help.hidden;
    showHelp(false);
    var step = current && current.querySelector("details.confirm-step[open]");
    if (step) {
      step.open = false;
      step.querySelector("summary").focus();
      closed = true;
    }
    return closed;
  }

  function typing(target) {
    if (!target || !target.tagName) {
      return false;
    }
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  var actions = {
    c: confirmStep,
    r: reject,
    n: function () { move(1); },
    j: function () { move(1); },
    k: function () { move(-1); },
    "?": function () { showHelp(help.hidden); },
    Escape: close
  };

  cards.forEach(function (card) {
    card.setAttribute("tabindex", "-1");
    card.addEventListener("focusin", function () { mark(card, false); });
  });
  mark(cards[0] || null, false);
  toggle.addEventListener("click", function () { showHelp(help.hidden); });

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.altKey || event.metaKey) {
      return;
    }
    if (typing(event.target) || !enabled() || document.querySelector("dialog[open]")) {
      return;  // an open photo (the lightbox) has its own keys, Escape included
    }
    var action = actions[event.key];
    if (!action) {
      return;
    }
    if (action() !== false || event.key !== "Escape") {
      event.preventDefault();  // Escape with nothing of ours to close is left to the browser
    }
  });
})();
