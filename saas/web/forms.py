"""A tenant page's form that a service refuses: the refusal is shown in the form, by one handler.

A handler that writes calls its service and returns the success answer; it never catches a
`DomainError`. Its route declares, once, where a refusal of what was typed goes:

    FORM = FormErrors("partials/projects_form.html", target="#project-create", title="Projects")

    @post("/", before_request=remember_form, exception_handlers=FORM.exception_handlers)

- an htmx request gets the form's own partial with the error, swapped in place of the form
  (`HX-Retarget`/`HX-Reswap`), so the rest of the page stays as it was;
- a plain form post gets a page with that same form and error;
- refusals that are not about the input (no access: 403/404, sign-in: 401, a lost authority)
  get the application's error pages, exactly as from any other route.

Litestar calls exception handlers synchronously, so the answer is built without a query: from
the tenant the router resolved, the error, and the fields as submitted (`remember_form` keeps
them before the handler runs, since a handler's parsed body does not reach its exception
handler).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar import MediaType, Request, Response
from litestar.plugins.htmx import HTMXTemplate
from litestar.response import Template
from litestar.types import ExceptionHandlersMap

from saas.errors import DomainError
from saas.tenancy.authority import AuthorityRefused
from saas.tenancy.context import TENANT_STATE_KEY, TenantContext
from saas.web.errors import handler_for
from saas.web.htmx import is_fragment

# Where `remember_form` keeps the submitted fields, on the request's state.
SUBMITTED_FORM = "submitted_form"
# The refusals a form shows beside its fields: the input is not acceptable (422) or clashes
# with what exists (409). These are also the statuses htmx swaps in (layouts/base.html).
FORM_STATUSES = frozenset({409, 422})
# The page a plain (non-htmx) post's refusal is shown on; it includes the form's partial.
FORM_PAGE = "pages/form_error.html"


async def remember_form(request: Request[Any, Any, Any]) -> None:
    """`before_request` hook: keep the submitted fields, for the form's answer to a refusal.

    Runs after the guards, where the handler would read the body anyway; Litestar caches the
    parsed form, so the handler's `data` is not read twice."""
    request.state[SUBMITTED_FORM] = dict(await request.form())


def submitted_form(request: Request[Any, Any, Any]) -> Mapping[str, Any]:
    return request.state.get(SUBMITTED_FORM) or {}


@dataclass(frozen=True, slots=True)
class FormErrors:
    """Where a route's refusals of what was typed are shown.

    `template` is the form's partial, rendered with `tenant`, `error` and `form` (the fields as
    submitted; empty unless the route has `before_request=remember_form`); `target` is the CSS
    selector of the element it replaces; `title` heads the page a plain post gets."""

    template: str
    target: str
    title: str

    @property
    def exception_handlers(self) -> ExceptionHandlersMap:
        return {DomainError: self.answer}

    def answer(self, request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
        tenant = request.state.get(TENANT_STATE_KEY)
        if (
            isinstance(exc, AuthorityRefused)
            or exc.status_code not in FORM_STATUSES
            or not isinstance(tenant, TenantContext)
        ):
            # Not about the input: the answer any other route would give.
            return handler_for(exc)(request, exc)
        context = {
            "tenant": tenant,
            "user": tenant.user,
            "error": exc,
            "form": submitted_form(request),
        }
        if is_fragment(request):
            return HTMXTemplate(
                template_name=self.template,
                context=context,
                status_code=exc.status_code,
                re_target=self.target,
                re_swap="outerHTML",
                media_type=MediaType.HTML,
            )
        return Template(
            FORM_PAGE,
            context={**context, "title": self.title, "form_template": self.template},
            status_code=exc.status_code,
            media_type=MediaType.HTML,
        )
