// The members page's behaviour (loaded by templates/pages/members.html only; no inline script):
// - confirmations in the page's own <dialog> (#confirm-dialog) instead of window.confirm: for
//   every htmx request that asks (hx-confirm), and for a role change to a role whose <option>
//   carries data-confirm-title (a raise to admin or owner). The request is sent only on "yes";
//   Escape or "Cancel" sends nothing;
// - row menus and the invite disclosure (<details>): Escape closes the open one and gives the
//   focus back to its button, a click outside closes it, opening a row menu closes the others;
// - focus after swaps: htmx focuses `autofocus` in what it swaps in (the invite's success
//   message, the first invalid field); otherwise the element that had the focus, found again by
//   its id in the new markup; after a removal, the next row's menu button;
// - `aria-busy` on the member list while it loads;
// - an invite error disappears once its field is changed.
(function () {
  "use strict";

  var dialog = null;
  var pending = null; // the request waiting on the dialog's answer

  function confirmation(elt, question) {
    // A role form asks what its chosen option asks; anything else asks its hx-confirm.
    if (elt.matches("[data-role-form]")) {
      var select = elt.querySelector("select");
      var option = select && select.options[select.selectedIndex];
      if (!option || !option.dataset.confirmTitle) return null;
      return {
        title: option.dataset.confirmTitle,
        detail: option.dataset.confirmDetail || "",
        button: option.dataset.confirmButton || "Confirm",
        danger: false,
      };
    }
    if (!question) return null;
    var source = elt.closest("[hx-confirm]") || elt;
    return {
      title: source.dataset.confirmTitle || question,
      detail: source.dataset.confirmTitle ? source.dataset.confirmDetail || "" : "",
      button: source.dataset.confirmButton || "Confirm",
      danger: source.hasAttribute("data-confirm-danger"),
    };
  }

  function ask(question, proceed, cancel) {
    dialog.querySelector("#confirm-dialog-title").textContent = question.title;
    var detail = dialog.querySelector("#confirm-dialog-detail");
    detail.textContent = question.detail;
    detail.hidden = !question.detail;
    var accept = dialog.querySelector('[value="confirm"]');
    accept.textContent = question.button;
    accept.classList.toggle("button--danger-solid", question.danger);
    accept.classList.toggle("button--primary", !question.danger);
    dialog.returnValue = "";
    pending = { proceed: proceed, cancel: cancel };
    dialog.showModal();
  }

  document.addEventListener("htmx:confirm", function (event) {
    if (!dialog) return;
    var elt = event.detail.elt;
    var question = elt && elt.matches ? confirmation(elt, event.detail.question) : null;
    if (!question) return;
    event.preventDefault();
    // A role left unconfirmed goes back to the member's role: nothing changed, nothing shows.
    var cancel = elt.matches("[data-role-form]") ? function () { elt.reset(); } : null;
    ask(question, function () { event.detail.issueRequest(true); }, cancel);
  });

  function onDialogClose() {
    var answer = pending;
    pending = null;
    if (!answer) return;
    if (dialog.returnValue === "confirm") answer.proceed();
    else if (answer.cancel) answer.cancel();
  }

  // ---- menus and the invite disclosure --------------------------------------------------
  function openDisclosures() {
    return Array.prototype.slice.call(
      document.querySelectorAll("details[data-row-menu][open], details[data-invite-disclosure][open]")
    );
  }

  function closeDisclosure(details, focusButton) {
    details.open = false;
    if (focusButton) {
      var summary = details.querySelector("summary");
      if (summary) summary.focus();
    }
  }

  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (!details.matches || !details.matches("details[data-row-menu]") || !details.open) return;
    openDisclosures().forEach(function (other) {
      if (other !== details && other.matches("[data-row-menu]")) other.open = false;
    });
  }, true);

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || (dialog && dialog.open)) return;
    var inside = event.target.closest && event.target.closest("details[open]");
    var target = inside && (inside.matches("[data-row-menu]") || inside.matches("[data-invite-disclosure]"))
      ? inside : openDisclosures().pop();
    if (!target) return;
    event.preventDefault();
    closeDisclosure(target, true);
  });

  document.addEventListener("click", function (event) {
    if (dialog && dialog.open) return;
    // Row menus float over the list; the invite form is part of the page and stays open.
    openDisclosures().forEach(function (details) {
      if (details.matches("[data-row-menu]") && !details.contains(event.target)) details.open = false;
    });
  });

  // ---- focus after swaps ----------------------------------------------------------------
  var focusedId = null;
  var focusNext = null; // after a removal: the id of the row menu to focus

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    var target = event.detail.target;
    if (target && target.id === "members-results") target.setAttribute("aria-busy", "true");
    if (elt && elt.matches && elt.matches("[data-remove-form]")) {
      var row = elt.closest("tr");
      var neighbour = row && (row.nextElementSibling || row.previousElementSibling);
      var menu = neighbour && neighbour.querySelector("summary[id]");
      focusNext = menu ? menu.id : "members-summary";
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var target = event.detail.target;
    if (target && target.id === "members-results") target.removeAttribute("aria-busy");
  });

  document.addEventListener("htmx:beforeSwap", function () {
    var active = document.activeElement;
    focusedId = active && active !== document.body && active.id ? active.id : null;
  });

  document.addEventListener("htmx:afterSettle", function () {
    var active = document.activeElement;
    if (active && active !== document.body) return;
    var id = focusNext || focusedId;
    focusNext = null;
    var again = id && document.getElementById(id);
    if (again) again.focus();
  });

  // ---- invite errors clear once their field changes --------------------------------------
  function clearError(field) {
    var ids = (field.getAttribute("data-clears-error") || "").split(/\s+/);
    var cleared = false;
    ids.forEach(function (id) {
      var error = id && document.getElementById(id);
      if (error) { error.remove(); cleared = true; }
    });
    if (!cleared && field.getAttribute("aria-invalid") !== "true") return;
    field.removeAttribute("aria-invalid");
    var described = (field.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (id) {
      return id && ids.indexOf(id) < 0;
    });
    if (described.length) field.setAttribute("aria-describedby", described.join(" "));
    else field.removeAttribute("aria-describedby");
  }

  ["input", "change"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var field = event.target;
      if (field.hasAttribute && field.hasAttribute("data-clears-error")) clearError(field);
    });
  });

  // ---- pictures: a picture that does not load leaves the initials under it ----------------
  document.addEventListener("error", function (event) {
    var img = event.target;
    if (img && img.classList && img.classList.contains("avatar__img")) img.remove();
  }, true);

  function start() {
    dialog = document.getElementById("confirm-dialog");
    if (dialog) dialog.addEventListener("close", onDialogClose);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
