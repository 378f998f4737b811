"""/o/<slug>/settings/sso: tenant admins (org:manage) configure their own SAML or OIDC
connection. Secrets are stored encrypted and never shown back.

A configuration that does not validate, or that the service refuses, is answered by `FORM`
(saas/web/refusals.py) in the form, beside its field; no handler here catches a `DomainError`.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Response, Template
from sqlalchemy.ext.asyncio import AsyncSession

from saas.config import Settings
from saas.errors import InvalidInput
from saas.login.authorize import begin_login
from saas.login.provider import OIDCProvider
from saas.sso.forms import SsoForm, validate_form
from saas.sso.services import SsoService
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.web.htmx import client_redirect, is_fragment
from saas.web.pages import page_context
from saas.web.refusals import FormErrors

FORM = FormErrors("partials/sso_form.html", target="#sso-form", title="Single sign-on")


def _settings_url(request: Request[Any, Any, Any], tenant: TenantContext) -> str:
    return request.app.route_reverse("sso.settings", slug=tenant.organization.slug)


def _back_to_settings(
    request: Request[Any, Any, Any], tenant: TenantContext, done: str
) -> Response[Any]:
    """To the settings page, which says what happened: a full page load for htmx too, since
    the current connection's card changes with the form."""
    flash(request, done, "success")
    if is_fragment(request):
        return client_redirect(_settings_url(request, tenant))
    return Redirect(path=_settings_url(request, tenant), status_code=303)


class SsoController(Controller):
    path = "/settings/sso"
    guards = [requires(Permission.ORG_MANAGE)]

    @get("/", name="sso.settings")
    async def settings_page(
        self,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        sso: NamedDependency[SsoService],
    ) -> Template:
        connection = await sso.current()
        options = connection.options if connection else {}
        form = SsoForm(
            strategy=connection.strategy if connection else "samlp",
            display_name=connection.display_name if connection else "",
            assign_membership_on_login="on"
            if connection and connection.assign_membership_on_login
            else "",
            sign_in_url=str(options.get("signInEndpoint", "")),
            discovery_url=str(options.get("discovery_url", "")),
            client_id=str(options.get("client_id", "")),
        )
        return Template(
            "pages/sso_settings.html",
            context=await page_context(
                tenant,
                db_session,
                connection=connection,
                form=form,
                has_secret=bool(connection and connection.secret_ciphertext),
                sync=await sso.sync_of(connection) if connection else None,
            ),
        )

    @post(
        "/",
        name="sso.save",
        status_code=303,
        before_request=FORM.remember,
        exception_handlers=FORM.exception_handlers,
    )
    async def save(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        settings: NamedDependency[Settings],
        sso: NamedDependency[SsoService],
        data: Annotated[SsoForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        # First, before anything is read or written: validating an OIDC connection fetches its
        # discovery document, and no transaction may be open during a network call.
        validated = await validate_form(data, settings)
        connection = await sso.save(
            validated,
            display_name=data.display_name,
            assign_membership_on_login=data.assign_membership_on_login in {"on", "true"},
        )
        return _back_to_settings(
            request, tenant, f"The connection “{connection.display_name}” was saved."
        )

    @post("/delete", name="sso.delete", status_code=303)
    async def delete(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        sso: NamedDependency[SsoService],
    ) -> Response[Any]:
        await sso.delete()
        return _back_to_settings(request, tenant, "The SSO connection was deleted.")

    @post("/jobs/{job_id:uuid}/retry", name="sso.retry", status_code=303)
    async def retry(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        sso: NamedDependency[SsoService],
        job_id: FromPath[UUID],
    ) -> Response[Any]:
        """Send a change Auth0 did not accept again, once its cause is fixed."""
        await sso.retry(job_id)
        return _back_to_settings(request, tenant, "The change is queued for Auth0 again.")

    @get("/test", name="sso.test")
    async def test_connection(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        sso: NamedDependency[SsoService],
        provider: NamedDependency[OIDCProvider],
    ) -> Redirect:
        """Sign in through the connection now, and come back here."""
        connection = await sso.current()
        if connection is None or connection.auth0_connection_id is None:
            raise InvalidInput("Save the connection and wait until Auth0 has it, then test it.")
        return await begin_login(
            request,
            provider,
            organization=tenant.organization,
            connection=connection,
            next_url=_settings_url(request, tenant),
        )
