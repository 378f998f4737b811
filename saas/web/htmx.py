"""The dashboard's htmx toolkit: which answer a request wants, and how the server talks back.

Built on litestar-htmx's response classes (`HTMXTemplate`, `ClientRedirect`, `ClientRefresh`,
`TriggerEvent`): controllers use these helpers instead of writing `HX-*` headers by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from litestar import Request, Response
from litestar.plugins.flash import flash
from litestar.plugins.htmx import (
    ClientRedirect,
    HTMXRequest,
    HTMXTemplate,
    ReSwapMethod,
    TriggerEvent,
)
from litestar.response import Redirect
from litestar.status_codes import HTTP_200_OK, HTTP_303_SEE_OTHER, HTTP_404_NOT_FOUND
from litestar.types import ExceptionHandlersMap

from saas.errors import DomainError
from saas.tenancy.authority import AuthorityRefused
from saas.web.errors import handle_domain_error

ToastLevel = Literal["success", "error", "info"]
# A fragment and the full page share a URL: caches must keep them apart.
VARY = {"Vary": "HX-Request, HX-History-Restore-Request"}
# The event `static/js/dashboard.js` shows as a toast.
TOAST_EVENT = "toast"


def is_fragment(request: Request[Any, Any, Any]) -> bool:
    """An htmx swap wants the partial; a history restore (cache miss) needs the full page."""
    return (
        isinstance(request, HTMXRequest)
        and bool(request.htmx)
        and not request.htmx.history_restore_request
    )


def toast(message: str, level: ToastLevel = "success") -> dict[str, Any]:
    """Keyword arguments for `HTMXTemplate` that show `message` as a toast once swapped."""
    return {
        "trigger_event": TOAST_EVENT,
        "params": {"message": message, "level": level},
        "after": "receive",
    }


def toast_only(message: str, level: ToastLevel = "success") -> TriggerEvent[str]:
    """An empty answer (the target swaps to nothing) that shows `message` as a toast."""
    return TriggerEvent(
        content="",
        name=TOAST_EVENT,
        params={"message": message, "level": level},
        after="receive",
        media_type="text/html",
    )


# ---- Refusals shown in the fragment, and what plain forms see after their redirect ---------
#
# Handlers call a service and let its `DomainError` rise. A handler whose refusal belongs
# beside its control declares that fragment first (`refuse_into`); `REFUSALS`, the
# controllers' exception handler, renders it. Litestar calls exception handlers
# synchronously, so the fragment is built from what the handler had loaded: no query.

REFUSAL_STATE_KEY = "saas.refusal"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Where a refusal of this htmx request is shown: `template`, with `context(error)`;
    `re_target`/`re_swap` when it replaces less than the request's own target."""

    template: str
    context: Callable[[DomainError], Mapping[str, Any]]
    re_target: str | None = None
    re_swap: ReSwapMethod | None = None


def refuse_into(
    request: Request[Any, Any, Any],
    template: str,
    context: Callable[[DomainError], Mapping[str, Any]],
    *,
    re_target: str | None = None,
    re_swap: ReSwapMethod | None = None,
) -> None:
    """Declare the fragment a `DomainError` raised later in this request is rendered into."""
    request.state[REFUSAL_STATE_KEY] = Refusal(template, context, re_target, re_swap)


def handle_refusal(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    """A refusal of an htmx request, in the fragment its handler declared, with the refusal's
    status (403/409/422, which `static/js/dashboard.js` swaps). Everything else answers as the
    application does (`saas.web.errors`): a lost authority (`AuthorityRefused`) and a 404 like
    the guard would, with the error page; so does a plain form, which no fragment can serve."""
    refusal = request.state.get(REFUSAL_STATE_KEY)
    if (
        not isinstance(refusal, Refusal)
        or isinstance(exc, AuthorityRefused)
        or exc.status_code == HTTP_404_NOT_FOUND
        or not is_fragment(request)
    ):
        return handle_domain_error(request, exc)
    return HTMXTemplate(
        template_name=refusal.template,
        context=dict(refusal.context(exc)),
        status_code=exc.status_code,
        re_target=refusal.re_target,
        re_swap=refusal.re_swap,
    )


# `exception_handlers` of the controllers that use `refuse_into`.
REFUSALS: ExceptionHandlersMap = {DomainError: handle_refusal}


def redirect_with_flash(
    request: Request[Any, Any, Any], message: str, path: str, level: ToastLevel = "success"
) -> Redirect:
    """Post/redirect/get for a plain form (no htmx): the next full page shows `message` once,
    in `layouts/base.html`'s flash region, as a toast would have."""
    flash(request, message, category=level)
    return Redirect(path=path, status_code=HTTP_303_SEE_OTHER)


def client_redirect(location: str, status_code: int = HTTP_200_OK) -> ClientRedirect:
    """A full page load of `location` (`HX-Redirect`), instead of a swap.

    litestar-htmx's `ClientRedirect` sets no status of its own, so the route's would apply: a
    POST's 201, or a 303 that the browser's XHR would try to follow before htmx saw the header.
    """
    redirect = ClientRedirect(location)
    redirect.status_code = status_code
    return redirect
