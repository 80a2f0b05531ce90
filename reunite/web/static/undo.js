/* The notice's Undo button: once its window has passed (counted from when the page loaded, so
   never later than the server allows), it is disabled and says so. The server decides
   anyway; without JavaScript a late press gets its refusal as the next notice. */
(function () {
  "use strict";
  var window_ = document.getElementById("undo-window");
  var form = document.getElementById("undo");
  if (!window_ || !form) {
    return;
  }
  var seconds = parseInt(window_.getAttribute("data-seconds"), 10);
  if (!(seconds > 0)) {
    return;
  }
  setTimeout(function () {
    var button = form.querySelector("button");
    if (button) {
      button.disabled = true;
    }
    window_.textContent = window_.getAttribute("data-expired") || "";
  }, seconds * 1000);
})();
