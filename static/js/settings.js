// The settings pages' small helpers (no inline script anywhere, for a strict CSP):
// - copy buttons beside the service-provider values: hidden until this script shows them, they
//   copy the value with the Clipboard API and say so in the page's status region (aria-live).
// (`data-confirm` on a destructive form is asked by static/js/dashboard.js, on every page.)
(function () {
  "use strict";

  function say(text) {
    var region = document.querySelector(".copy-status");
    if (!region) return;
    region.textContent = "";
    // A fresh text node, so screen readers announce a repeated copy of the same value too.
    window.setTimeout(function () { region.textContent = text; }, 30);
  }

  function setUpCopyButtons() {
    if (!(navigator.clipboard && window.isSecureContext)) return; // values stay selectable
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        var label = button.getAttribute("data-copy-label") || "value";
        if (!source) return;
        navigator.clipboard.writeText(source.textContent.trim()).then(
          function () {
            button.classList.add("copy-button--done");
            say("Copied: " + label);
            window.setTimeout(function () { button.classList.remove("copy-button--done"); }, 2000);
          },
          function () { say("Could not copy. Select the value and copy it by hand."); }
        );
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUpCopyButtons);
  else setUpCopyButtons();
})();
