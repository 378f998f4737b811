"""/o/<slug>/settings/sso: tenant admins (org:manage) configure their own SAML or OIDC
connection. Secrets are stored encrypted and never shown back."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.config import Settings
from saas.errors import DomainError, InvalidInput
from saas.login.authorize import begin_login
from saas.login.current_user import actor_from
from saas.login.provider import OIDCProvider
from saas.sso.services import SsoService
from saas.sso.validation import (
    ValidatedConnection,
    validate_oidc,
    validate_saml_endpoint,
    validate_saml_metadata,
)
from saas.tenancy.authority import AuthorityRefused
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.web.input import MultiLine, SingleLine
from saas.web.pages import page_context


class SsoForm(Struct):
    strategy: SingleLine = ""
    display_name: SingleLine = ""
    assign_membership_on_login: SingleLine = ""
    metadata_xml: MultiLine = ""
    sign_in_url: SingleLine = ""
    signing_cert: MultiLine = ""
    discovery_url: SingleLine = ""
    client_id: SingleLine = ""
    client_secret: SingleLine = ""


async def validate_form(form: SsoForm, settings: Settings) -> ValidatedConnection:
    allow_loopback = not settings.is_production
    if form.strategy == "samlp":
        if form.metadata_xml.strip():
            return validate_saml_metadata(form.metadata_xml, allow_loopback_http=allow_loopback)
        if form.sign_in_url.strip() or form.signing_cert.strip():
            return validate_saml_endpoint(
                form.sign_in_url, form.signing_cert, allow_loopback_http=allow_loopback
            )
        raise InvalidInput(
            "Paste the IdP's metadata XML, or give its sign-in URL and signing certificate.",
            field="metadata_xml",
        )
    if form.strategy == "oidc":
        async with httpx.AsyncClient() as http:
            return await validate_oidc(
                form.discovery_url,
                form.client_id,
                form.client_secret,
                http,
                allow_loopback_http=allow_loopback,
            )
    raise InvalidInput("Choose SAML or OpenID Connect.", field="strategy")


class SsoController(Controller):
    path = "/settings/sso"
    guards = [requires(Permission.ORG_MANAGE)]

    async def _page(
        self,
        tenant: TenantContext,
        db: AsyncSession,
        settings: Settings,
        *,
        form: SsoForm | None = None,
        error: DomainError | None = None,
        status_code: int = 200,
    ) -> Template:
        connection = await SsoService(db, tenant.organization, settings).current()
        if form is None:
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
        # Never render a secret back, even one the user just typed.
        form.client_secret = ""
        return Template(
            "pages/sso_settings.html",
            context=await page_context(
                tenant,
                db,
                connection=connection,
                form=form,
                error=error,
                has_secret=bool(connection and connection.secret_ciphertext),
            ),
            status_code=status_code,
        )

    @get("/", name="sso.settings")
    async def settings_page(
        self,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
    ) -> Template:
        return await self._page(tenant, db_session, settings)

    @post("/", name="sso.save", status_code=303)
    async def save(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        data: Annotated[SsoForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template | Redirect:
        try:
            validated = await validate_form(data, settings)
            await SsoService(db_session, tenant.organization, settings).save(
                validated,
                display_name=data.display_name,
                assign_membership_on_login=data.assign_membership_on_login in {"on", "true"},
                actor=actor_from(request, tenant.user),
                authority=tenant.acting,
            )
        except AuthorityRefused:
            raise
        except DomainError as error:
            return await self._page(
                tenant, db_session, settings, form=data, error=error, status_code=error.status_code
            )
        return Redirect(path=f"/o/{tenant.organization.slug}/settings/sso/", status_code=303)

    @post("/delete", name="sso.delete", status_code=303)
    async def delete(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
    ) -> Redirect:
        await SsoService(db_session, tenant.organization, settings).delete(
            actor=actor_from(request, tenant.user), authority=tenant.acting
        )
        return Redirect(path=f"/o/{tenant.organization.slug}/settings/sso/", status_code=303)

    @get("/test", name="sso.test")
    async def test_connection(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        provider: NamedDependency[OIDCProvider],
    ) -> Redirect:
        """Sign in through the connection now, and come back here."""
        connection = await SsoService(db_session, tenant.organization, settings).current()
        if connection is None or connection.auth0_connection_id is None:
            raise InvalidInput("Save the connection and wait until Auth0 has it, then test it.")
        return await begin_login(
            request,
            provider,
            organization=tenant.organization,
            connection=connection,
            next_url=f"/o/{tenant.organization.slug}/settings/sso/",
        )
