"""Tenant pages under /o/<slug>/: the overview, and the organization's settings (its name and
its email domains) for its admins (org:manage).

The settings page is plain forms (post/redirect/get), so it works without JavaScript. A change
the service refuses (a name missing or too long, a malformed, public or claimed domain, a TXT
record not found) is shown on the settings page again, beside the field, with what was typed;
nothing is written. A lost authority, or a domain of another organization, gets the
application's 403/404 page like any other route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.actions import AuditAction
from saas.audit.services import OrganizationAuditLog
from saas.audit.wording import describe_details, describe_target
from saas.config import Settings
from saas.errors import DomainError, InvalidInput
from saas.organizations.overview import overview_of
from saas.organizations.settings import DomainRow, OrganizationSettingsService, domain_rows
from saas.sso.services import SsoService
from saas.tenancy.authority import AuthorityRefused
from saas.tenancy.context import TENANT_STATE_KEY, TenantContext
from saas.tenancy.guards import read_before_body, requires
from saas.tenancy.permissions import Permission
from saas.web.errors import handler_for
from saas.web.input import SingleLine
from saas.web.pages import page_context
from saas.web.refusals import FORM_STATUSES, redirect_with_flash

AUDIT_LABELS = {action.value: action.label for action in AuditAction}


class NameForm(Struct):
    display_name: SingleLine = ""


class DomainForm(Struct):
    domain: SingleLine = ""


SETTINGS_FORM = "saas.org_settings_form"


@dataclass(frozen=True, slots=True)
class SettingsForm:
    """What a refused settings change is shown with: the domains (loaded before the write;
    exception handlers run no query), the fields as typed, and the domain the change was for."""

    domains: list[DomainRow]
    form: dict[str, str]
    domain_id: str | None


def settings_refusal(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    """The settings page again, the error beside the field (or the domain) it is about, with
    the refusal's status: for what was typed (409, 422). Anything else -- a lost authority, a
    domain this organization does not have, a sign-in -- is the application's answer."""
    declared = request.state.get(SETTINGS_FORM)
    tenant = request.state.get(TENANT_STATE_KEY)
    if (
        not isinstance(declared, SettingsForm)
        or not isinstance(tenant, TenantContext)
        or isinstance(exc, AuthorityRefused)
        or exc.status_code not in FORM_STATUSES
    ):
        return handler_for(exc)(request, exc)
    return Template(
        "pages/org_settings.html",
        context={
            "tenant": tenant,
            "user": tenant.user,
            "domains": declared.domains,
            "form": declared.form,
            "error": exc,
            "error_domain_id": declared.domain_id,
        },
        status_code=exc.status_code,
        media_type=MediaType.HTML,
    )


def _invalid_text(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """A field the text rule refused (a control character): the form's error, like any other
    refusal of what was typed, rather than a bare 400 page."""
    items = exc.extra if isinstance(exc.extra, list) else []
    item = next((i for i in items if isinstance(i, dict)), {})
    key = str(item.get("key") or "")
    field = key if key in {"display_name", "domain"} else None
    error = InvalidInput(
        "Remove the control characters (such as a tab, a line break or NUL).", field=field
    )
    return settings_refusal(request, error)


SETTINGS_REFUSALS: ExceptionHandlersMap = {
    DomainError: settings_refusal,
    ValidationException: _invalid_text,
}


async def declare_settings_form(request: Request[Any, Any, Any]) -> None:
    """`before_request` of every settings write (it runs before the body is parsed, so a
    field the text rule refuses is shown in the form too): load what the page shows, in a
    read that ends before the write begins, and keep what was typed."""
    tenant = request.state[TENANT_STATE_KEY]
    async with read_before_body(request) as db:
        domains = await domain_rows(db, tenant.organization.id)
    form = {key: str(value) for key, value in (await request.form()).items()}
    form.pop("_csrf_token", None)
    domain_id = request.path_params.get("domain_id")
    request.state[SETTINGS_FORM] = SettingsForm(
        domains, form, str(domain_id) if domain_id is not None else None
    )


def _settings_url(request: Request[Any, Any, Any], tenant: TenantContext) -> str:
    return request.app.route_reverse("org.settings", slug=tenant.organization.slug)


class OrganizationHomeController(Controller):
    path = "/"

    @get("/", name="org.home", guards=[requires(Permission.ORG_READ)])
    async def home(
        self,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        sso: NamedDependency[SsoService],
        audit: NamedDependency[OrganizationAuditLog],
    ) -> Template:
        overview = await overview_of(db_session, tenant, sso=sso, audit=audit)
        return Template(
            "pages/org_home.html",
            context=await page_context(
                tenant,
                db_session,
                overview=overview,
                labels=AUDIT_LABELS,
                describe_target=describe_target,
                describe_details=describe_details,
            ),
        )


class OrganizationSettingsController(Controller):
    path = "/settings/organization"
    guards = [requires(Permission.ORG_MANAGE)]
    exception_handlers = SETTINGS_REFUSALS

    @get("/", name="org.settings")
    async def settings_page(
        self,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        org_settings: NamedDependency[OrganizationSettingsService],
    ) -> Template:
        return Template(
            "pages/org_settings.html",
            context=await page_context(
                tenant,
                db_session,
                domains=await org_settings.domains(),
                error=None,
                form={},
                error_domain_id=None,
            ),
            media_type=MediaType.HTML,
        )

    @post("/name", name="org.rename", status_code=303, before_request=declare_settings_form)
    async def rename(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        org_settings: NamedDependency[OrganizationSettingsService],
        data: Annotated[NameForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Redirect:
        organization = await org_settings.rename(data.display_name)
        return redirect_with_flash(
            request,
            f"The organization is now called “{organization.display_name}”.",
            _settings_url(request, tenant),
        )

    @post("/domains", name="org.add_domain", status_code=303, before_request=declare_settings_form)
    async def add_domain(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        org_settings: NamedDependency[OrganizationSettingsService],
        data: Annotated[DomainForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Redirect:
        record = await org_settings.add_domain(data.domain)
        return redirect_with_flash(
            request,
            f"{record.domain} was added. Publish its TXT record, then verify it.",
            _settings_url(request, tenant),
        )

    @post(
        "/domains/{domain_id:uuid}/verify",
        name="org.verify_domain",
        status_code=303,
        before_request=declare_settings_form,
    )
    async def verify_domain(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        settings: NamedDependency[Settings],
        org_settings: NamedDependency[OrganizationSettingsService],
        domain_id: FromPath[UUID],
    ) -> Redirect:
        record = await org_settings.verify_domain(domain_id, nameserver=settings.dns_nameserver)
        return redirect_with_flash(
            request,
            f"{record.domain} is verified: sign-ins from it now come to this organization.",
            _settings_url(request, tenant),
        )

    @post(
        "/domains/{domain_id:uuid}/remove",
        name="org.remove_domain",
        status_code=303,
        before_request=declare_settings_form,
    )
    async def remove_domain(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        org_settings: NamedDependency[OrganizationSettingsService],
        domain_id: FromPath[UUID],
    ) -> Redirect:
        record = await org_settings.remove_domain(domain_id)
        return redirect_with_flash(
            request, f"{record.domain} was removed.", _settings_url(request, tenant)
        )
