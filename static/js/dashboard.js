// The dashboard's only script (no inline script anywhere, for a strict CSP):
// - sends the CSRF token on every unsafe htmx request (X-CSRFToken): the cookie's current value,
//   so signing in again in another tab (which replaces the token) does not break this one;
// - swaps the inline-error fragments the server answers refusals with (403/409/422), but never
//   a full error page into a part of the page: that one becomes a toast instead;
// - shows toasts announced by the server in an `HX-Trigger: {"toast": {...}}` header;
// - closes an open header menu (<details class="menu">, the organization switcher) on Escape or a
//   click outside it, returning focus to its button when focus was inside; in an open one,
//   ArrowDown/ArrowUp (and Home/End) move the focus through its links, as Tab does;
// - asks before a destructive plain form is sent: `data-confirm="…"` on the form;
// - keeps tenant data out of localStorage (no htmx history cache: back/forward reload the URL,
//   which the server renders as a full page).
(function () {
  "use strict";

  // htmx's settings live in <meta name="htmx-config"> in the layout, so they hold from the
  // first request on: no injected indicator styles (CSP), no history cache, 403/409/422
  // fragments swapped.

  var UNSAFE = /^(POST|PUT|PATCH|DELETE)$/i;

  var CSRF_COOKIES = ["__Host-saas_csrf", "saas_csrf"];

  function csrfToken() {
    var cookies = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < CSRF_COOKIES.length; i++) {
      for (var j = 0; j < cookies.length; j++) {
        var eq = cookies[j].indexOf("=");
        if (cookies[j].slice(0, eq) === CSRF_COOKIES[i]) return decodeURIComponent(cookies[j].slice(eq + 1));
      }
    }
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function toastRegion() {
    var region = document.getElementById("toast-region");
    if (!region) {
      region = document.createElement("div");
      region.id = "toast-region";
      region.className = "toast-region";
      region.setAttribute("role", "status");
      region.setAttribute("aria-live", "polite");
      document.body.appendChild(region);
    }
    return region;
  }

  function showToast(message, level) {
    if (!message) return;
    var toast = document.createElement("div");
    toast.className = "toast toast--" + (level || "success");
    toast.setAttribute("data-testid", "toast");
    var text = document.createElement("span");
    text.className = "toast__text";
    text.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast__close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", function () { toast.remove(); });
    toast.appendChild(text);
    toast.appendChild(close);
    toastRegion().appendChild(toast);
    window.setTimeout(function () {
      toast.classList.add("toast--leaving");
      window.setTimeout(function () { toast.remove(); }, 300);
    }, level === "error" ? 9000 : 6000);
  }

  // A full error page (a guard's refusal, a 404, a 500): its message, not its layout.
  function errorMessage(xhr) {
    var fallback = "The request failed (" + xhr.status + "). Please reload the page.";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      var title = doc.querySelector(".error-card h1");
      var detail = doc.querySelector(".error-card h1 + p");
      if (title && detail) return title.textContent.trim() + ": " + detail.textContent.trim();
    } catch (e) { /* fall through */ }
    return fallback;
  }

  function isFullDocument(text) {
    return /^\s*<!doctype html/i.test(text || "");
  }

  document.addEventListener("htmx:configRequest", function (event) {
    if (UNSAFE.test(event.detail.verb)) {
      event.detail.headers["X-CSRFToken"] = csrfToken();
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status >= 400 && isFullDocument(xhr.responseText)) {
      event.detail.shouldSwap = false;
      event.detail.isError = false;
      showToast(errorMessage(xhr), "error");
      // Nothing was changed, so the form must not look changed: a role picker goes back to the
      // role the server last rendered.
      var source = (event.detail.requestConfig && event.detail.requestConfig.elt) || event.detail.elt;
      var form = source && source.closest ? source.closest("form") : null;
      if (form) form.reset();
    }
  });

  document.addEventListener("htmx:sendError", function () {
    showToast("The server could not be reached. Check your connection and try again.", "error");
  });

  function openMenus() {
    return document.querySelectorAll("details.menu[open]");
  }

  function closeMenu(menu, returnFocus) {
    var hadFocus = menu.contains(document.activeElement);
    menu.removeAttribute("open");
    var summary = menu.querySelector("summary");
    if (summary && (returnFocus || hadFocus)) summary.focus();
  }

  // The links of the open menu the focus is in (its button included), or null.
  function menuLinks(target) {
    var menu = target && target.closest ? target.closest("details.menu[open]") : null;
    return menu ? Array.prototype.slice.call(menu.querySelectorAll(".menu__list a[href]")) : null;
  }

  var MOVES = { ArrowDown: 1, ArrowUp: -1, Home: 0, End: 0 };

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      var menus = openMenus();
      for (var i = 0; i < menus.length; i++) closeMenu(menus[i], menus[i].contains(document.activeElement));
      return;
    }
    if (!Object.prototype.hasOwnProperty.call(MOVES, event.key) || event.altKey || event.ctrlKey || event.metaKey) return;
    var links = menuLinks(document.activeElement);
    if (!links || !links.length) return;
    var at = links.indexOf(document.activeElement);
    var next;
    if (event.key === "Home") next = 0;
    else if (event.key === "End") next = links.length - 1;
    else if (at < 0) next = event.key === "ArrowDown" ? 0 : links.length - 1;  // from the button
    else next = (at + MOVES[event.key] + links.length) % links.length;
    event.preventDefault();  // not a scroll of the page
    links[next].focus();
  });

  document.addEventListener("click", function (event) {
    var menus = openMenus();
    for (var i = 0; i < menus.length; i++) {
      if (!menus[i].contains(event.target)) closeMenu(menus[i], false);
    }
  });

  // A destructive plain form asks first. The browser's own confirm dialog: keyboard-operable,
  // announced by screen readers, nothing to style or trap. Cancel sends nothing.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  document.addEventListener("toast", function (event) {
    var detail = event.detail || {};
    showToast(detail.message || detail.value, detail.level);
  });
})();
