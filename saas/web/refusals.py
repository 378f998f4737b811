"""A refusal shown where the person acted: one exception handler for every dashboard write.

A handler that writes calls its service and returns the success answer; it never catches a
`DomainError`. Where a refusal belongs beside the control that asked (a member's row, the
pending-invitations panel, a form), the route declares it, and `REFUSALS`, the controllers'
exception handler, renders it:

- per request, from objects the handler has loaded: `refuse_into(request, template, context)`
  (members, invitations);
- per route, for a form: `FormErrors(template, target, title)`, whose `before_request` hook
  keeps the submitted fields (projects, single sign-on).

An htmx request gets the declared fragment with the refusal's status (swapped in by
`static/js/dashboard.js`); a plain form post gets the form's page when the route declared a form,
else the application's error page. Refusals that are not about the input -- a lost authority
(`AuthorityRefused`), a 404, a sign-in, or any status the declaration does not show -- get the
application's answer (`saas.web.errors`), exactly as from any other route.

Litestar calls exception handlers synchronously, so no answer here may query the database: it
is built from what the handler had loaded, the error and the fields as submitted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from litestar import MediaType, Request, Response
from litestar.plugins.flash import flash
from litestar.plugins.htmx import HTMXTemplate, ReSwapMethod
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from litestar.types import ExceptionHandlersMap

from saas.errors import DomainError
from saas.tenancy.authority import AuthorityRefused
from saas.tenancy.context import TENANT_STATE_KEY, TenantContext
from saas.web.errors import handler_for
from saas.web.htmx import ToastLevel, client_redirect, is_fragment

REFUSAL_STATE_KEY = "saas.refusal"
# Where `FormErrors`'s hook keeps the submitted fields, on the request's state.
SUBMITTED_FORM = "submitted_form"
# What a member's row or panel shows beside its controls: a rule's refusal (403), a clash (409),
# unacceptable input (422). A form shows only the last two: a 403 there is about access.
ROW_STATUSES = frozenset({403, 409, 422})
FORM_STATUSES = frozenset({409, 422})
# The page a plain (non-htmx) post's form refusal is shown on; it includes the form's partial.
FORM_PAGE = "pages/form_error.html"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Where a refusal of this request is shown: `template` with `context(error)`, replacing
    `re_target` (`re_swap`) when that is not the request's own target. `page_title` names the
    page a plain post gets (forms only)."""

    template: str
    context: Callable[[DomainError], Mapping[str, Any]]
    statuses: frozenset[int] = ROW_STATUSES
    re_target: str | None = None
    re_swap: ReSwapMethod | None = None
    page_title: str | None = None


def refuse_into(
    request: Request[Any, Any, Any],
    template: str,
    context: Callable[[DomainError], Mapping[str, Any]],
    *,
    re_target: str | None = None,
    re_swap: ReSwapMethod | None = None,
) -> None:
    """Declare the fragment a `DomainError` raised later in this request is rendered into."""
    request.state[REFUSAL_STATE_KEY] = Refusal(
        template, context, re_target=re_target, re_swap=re_swap
    )


def handle_refusal(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    refusal = request.state.get(REFUSAL_STATE_KEY)
    if (
        not isinstance(refusal, Refusal)
        or isinstance(exc, AuthorityRefused)
        or exc.status_code not in refusal.statuses
    ):
        return handler_for(exc)(request, exc)
    context = dict(refusal.context(exc))
    if is_fragment(request):
        return HTMXTemplate(
            template_name=refusal.template,
            context=context,
            status_code=exc.status_code,
            re_target=refusal.re_target,
            re_swap=refusal.re_swap,
            media_type=MediaType.HTML,
        )
    if refusal.page_title is None:
        return handler_for(exc)(request, exc)
    return Template(
        FORM_PAGE,
        context={**context, "title": refusal.page_title, "form_template": refusal.template},
        status_code=exc.status_code,
        media_type=MediaType.HTML,
    )


# `exception_handlers` of every dashboard controller (or route) that declares its refusals.
REFUSALS: ExceptionHandlersMap = {DomainError: handle_refusal}


@dataclass(frozen=True, slots=True)
class FormErrors:
    """A route's form: its refusals of what was typed are shown in `template` (the form's
    partial, rendered with `tenant`, `user`, `error` and `form`, the fields as submitted),
    replacing the element `target`; a plain post gets a page titled `title` with that form.

    A route whose refusals it shows takes `**FORM.route_options()`: its `before_request` hook
    keeps what was typed for the answer (a handler's parsed body does not reach its exception
    handler), and its exception handlers render it; `route_options(remember=False)` declares
    the form without echoing the fields (another field's route)."""

    template: str
    target: str
    title: str

    exception_handlers = REFUSALS

    def _declare(self, request: Request[Any, Any, Any], form: Mapping[str, Any]) -> None:
        tenant = request.state.get(TENANT_STATE_KEY)
        if not isinstance(tenant, TenantContext):
            return  # not a tenant route's request: nothing to render the form with

        def context(error: DomainError) -> Mapping[str, Any]:
            return {"tenant": tenant, "user": tenant.user, "error": error, "form": form}

        request.state[REFUSAL_STATE_KEY] = Refusal(
            self.template,
            context,
            statuses=FORM_STATUSES,
            re_target=self.target,
            re_swap="outerHTML",
            page_title=self.title,
        )

    async def remember(self, request: Request[Any, Any, Any]) -> None:
        """`before_request` hook: declare the form with the submitted fields. Runs after the
        guards, where the handler would read the body anyway; Litestar caches the parsed form,
        so the handler's `data` is not read twice."""
        self._declare(request, dict(await request.form()))

    async def declare(self, request: Request[Any, Any, Any]) -> None:
        """`before_request` hook: declare the form, its fields left empty."""
        self._declare(request, {})

    def route_options(self, *, remember: bool = True) -> dict[str, Any]:
        """The options of a route whose refusals this form shows."""
        return {
            "before_request": self.remember if remember else self.declare,
            "exception_handlers": self.exception_handlers,
        }


def redirect_with_flash(
    request: Request[Any, Any, Any], message: str, path: str, level: ToastLevel = "success"
) -> Redirect:
    """Post/redirect/get for a plain form (no htmx): the next full page shows `message` once,
    in the flash region of `layouts/base.html`, as a toast would have."""
    flash(request, message, category=level)
    return Redirect(path=path, status_code=HTTP_303_SEE_OTHER)


def reload_with_flash(
    request: Request[Any, Any, Any], message: str, path: str, level: ToastLevel = "success"
) -> Response[Any]:
    """To `path` as a full page load, which says what happened: a plain form is redirected,
    htmx is told to load the page (for a change that alters more than the form's own part)."""
    if is_fragment(request):
        flash(request, message, category=level)
        return client_redirect(path)
    return redirect_with_flash(request, message, path, level)
