"""/o/<slug>/settings/security: the organization's owners require multi-factor sign-in and
shorten its session timeouts. Refused input is answered in the form, beside its field
(`FORM`, saas/web/refusals.py)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Response, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.config import Settings
from saas.security.services import SecurityPolicyService, effective_timeouts, parse_policy
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.web.input import SingleLine
from saas.web.pages import page_context
from saas.web.refusals import FormErrors, reload_with_flash

FORM = FormErrors("partials/security_form.html", target="#security-form", title="Security")


class SecurityForm(Struct):
    require_mfa: SingleLine = ""
    idle_minutes: SingleLine = ""
    absolute_minutes: SingleLine = ""


def _minutes(seconds: int | None) -> str:
    return "" if seconds is None else str(seconds // 60)


class SecurityController(Controller):
    path = "/settings/security"
    guards = [requires(Permission.OWNERSHIP)]

    @get("/", name="security.settings")
    async def settings_page(
        self,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
    ) -> Template:
        org = tenant.organization
        form = {
            "require_mfa": "on" if org.require_mfa else "",
            "idle_minutes": _minutes(org.session_idle_timeout_seconds),
            "absolute_minutes": _minutes(org.session_absolute_timeout_seconds),
        }
        idle, absolute = effective_timeouts(org, settings)
        return Template(
            "pages/security_settings.html",
            context=await page_context(
                tenant,
                db_session,
                form=form,
                effective_idle_minutes=idle // 60,
                effective_absolute_minutes=absolute // 60,
            ),
        )

    @post("/", name="security.save", status_code=303, **FORM.route_options())
    async def save(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        settings: NamedDependency[Settings],
        security: NamedDependency[SecurityPolicyService],
        data: Annotated[SecurityForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        policy = parse_policy(
            require_mfa=data.require_mfa in {"on", "true"},
            idle_minutes=data.idle_minutes,
            absolute_minutes=data.absolute_minutes,
            settings=settings,
        )
        await security.save(policy)
        url = request.app.route_reverse("security.settings", slug=tenant.organization.slug)
        return reload_with_flash(request, "The security policy was saved.", url)
