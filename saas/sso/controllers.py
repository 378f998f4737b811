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
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Response, Template
from sqlalchemy.ext.asyncio import AsyncSession

from saas.auth0.sync_state import SyncState
from saas.config import Settings
from saas.db.models import EnterpriseConnection
from saas.errors import InvalidInput
from saas.login.authorize import begin_login
from saas.login.provider import OIDCProvider
from saas.login.sso_test import SSO_TEST_RESULT
from saas.sso.forms import SsoForm, validate_form
from saas.sso.service_provider import saml_metadata, service_provider_values
from saas.sso.services import SsoService, connection_name
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.web.input import SingleLine
from saas.web.pages import page_context
from saas.web.refusals import FormErrors, reload_with_flash

FORM = FormErrors("partials/sso_form.html", target="#sso-form", title="Single sign-on")


def _settings_url(request: Request[Any, Any, Any], tenant: TenantContext) -> str:
    return request.app.route_reverse("sso.settings", slug=tenant.organization.slug)


def _back_to_settings(
    request: Request[Any, Any, Any], tenant: TenantContext, done: str
) -> Response[Any]:
    """To the settings page, which says what happened: a full page load for htmx too, since
    the current connection's card changes with the form."""
    return reload_with_flash(request, done, _settings_url(request, tenant))


PROTOCOLS = ("samlp", "oidc")


def _name_for(tenant: TenantContext, connection: EnterpriseConnection | None, strategy: str) -> str:
    """The Auth0 connection name a connection of `strategy` has, or will have once saved:
    changing the protocol makes a new connection (saas/sso/services.py)."""
    if connection is not None and connection.strategy == strategy:
        return connection.auth0_connection_name
    return connection_name(tenant.organization, strategy)


def testable(connection: EnterpriseConnection | None, sync: SyncState | None) -> str | None:
    """Why a test sign-in cannot start now, or None when it can: only a connection Auth0 has
    as saved can be tested (a pending change would test the old one, a failed one nothing)."""
    if connection is None:
        return "Save the connection first."
    if sync is not None and sync.failed:
        return "Auth0 did not accept the last change: fix it and retry before testing."
    if connection.auth0_connection_id is None or (sync is not None and sync.pending):
        return "Auth0 is still setting up the connection; test it once it is in step."
    return None


class SsoController(Controller):
    path = "/settings/sso"
    guards = [requires(Permission.ORG_MANAGE)]

    @get("/", name="sso.settings")
    async def settings_page(
        self,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        sso: NamedDependency[SsoService],
        protocol: FromQuery[SingleLine | None] = None,
    ) -> Template:
        """`protocol` (samlp or oidc) pre-selects the protocol: the choice that shows only that
        protocol's fields works without JavaScript, by CSS alone or by this link."""
        connection = await sso.current()
        options = connection.options if connection else {}
        chosen = protocol if protocol in PROTOCOLS else None
        form = SsoForm(
            strategy=chosen or (connection.strategy if connection else ""),
            display_name=connection.display_name if connection else "",
            assign_membership_on_login="on"
            if connection and connection.assign_membership_on_login
            else "",
            sign_in_url=str(options.get("signInEndpoint", "")),
            discovery_url=str(options.get("discovery_url", "")),
            client_id=str(options.get("client_id", "")),
        )
        sync = await sso.sync_of(connection) if connection else None
        return Template(
            "pages/sso_settings.html",
            context=await page_context(
                tenant,
                db_session,
                connection=connection,
                form=form,
                has_secret=bool(connection and connection.secret_ciphertext),
                sync=sync,
                not_testable=testable(connection, sync),
                sp={
                    strategy: service_provider_values(
                        settings, _name_for(tenant, connection, strategy)
                    )
                    for strategy in PROTOCOLS
                },
                dev_idp=settings.uses_dev_idp,
            ),
        )

    @get("/metadata.xml", name="sso.metadata", media_type="application/samlmetadata+xml")
    async def metadata(
        self,
        tenant: NamedDependency[TenantContext],
        settings: NamedDependency[Settings],
        sso: NamedDependency[SsoService],
    ) -> Response[bytes]:
        """The service provider's SAML metadata for this organization's SAML connection (the
        one saved, or the one saving would make), for the customer's IdP to import."""
        values = service_provider_values(settings, _name_for(tenant, await sso.current(), "samlp"))
        return Response(
            saml_metadata(values),
            media_type="application/samlmetadata+xml",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="{values.connection_name}-sp-metadata.xml"'
                )
            },
        )

    @post("/", name="sso.save", status_code=303, **FORM.route_options())
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
        """Sign in through the connection now, and come back to the result page (what was
        received, or why it failed); the admin stays signed in as themselves."""
        connection = await sso.current()
        reason = testable(connection, await sso.sync_of(connection) if connection else None)
        if reason is not None:
            raise InvalidInput(reason)
        return await begin_login(
            request,
            provider,
            organization=tenant.organization,
            connection=connection,
            next_url=request.app.route_reverse("sso.test_result", slug=tenant.organization.slug),
            sso_test=True,
        )

    @get("/test/result", name="sso.test_result")
    async def test_result(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        sso: NamedDependency[SsoService],
    ) -> Template:
        """The latest test sign-in of this organization's connection, from this session."""
        result = request.session.get(SSO_TEST_RESULT)
        if not isinstance(result, dict) or result.get("organization_id") != str(
            tenant.organization.id
        ):
            result = None
        connection = await sso.current()
        # Whether the person who signed in belongs here: a working connection can still
        # leave someone outside the organization.
        role = None
        if result is not None and result.get("ok"):
            role = await sso.role_of_sub(str(result["claims"]["sub"]))
        return Template(
            "pages/sso_test_result.html",
            context=await page_context(
                tenant, db_session, result=result, connection=connection, member_role=role
            ),
        )
