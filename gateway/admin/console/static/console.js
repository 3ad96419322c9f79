// crm-gateway console: the only script the pages load (CSP script-src 'self', nothing inline).
// The live view reloads itself every `data-refresh` seconds while the tab is visible.
"use strict";
(function () {
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (seconds > 0) {
    window.setInterval(function () {
      if (document.visibilityState === "visible") { window.location.reload(); }
    }, seconds * 1000);
  }
})();
