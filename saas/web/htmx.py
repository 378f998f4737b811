"""The dashboard's htmx toolkit: which answer a request wants, and how the server talks back.

Built on litestar-htmx's response classes (`HTMXTemplate`, `ClientRedirect`, `ClientRefresh`,
`TriggerEvent`): controllers use these helpers instead of writing `HX-*` headers by hand.
"""

from __future__ import annotations

from typing import Any, Literal

from litestar import Request
from litestar.plugins.htmx import (
    ClientRedirect,
    HTMXRequest,
    TriggerEvent,
)
from litestar.status_codes import HTTP_200_OK

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


def client_redirect(location: str, status_code: int = HTTP_200_OK) -> ClientRedirect:
    """A full page load of `location` (`HX-Redirect`), instead of a swap.

    litestar-htmx's `ClientRedirect` sets no status of its own, so the route's would apply: a
    POST's 201, or a 303 that the browser's XHR would try to follow before htmx saw the header.
    """
    redirect = ClientRedirect(location)
    redirect.status_code = status_code
    return redirect
