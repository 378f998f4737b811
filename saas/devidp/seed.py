"""Seed the dev IdP from ``saas.demo.data`` and the settings, idempotently.

Registered clients and roles are brought in line with the code on every start (they are
configuration). Connections, organizations and users are only inserted when missing, and
demo memberships are only added when the organization itself is first created, so changes
made later through the Management API (a removed member, a changed role) survive restarts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.config import Settings
from saas.demo import data as demo_data
from saas.devidp import models as idp
from saas.devidp.clients import ClientSpec
from saas.devidp.passwords import hash_password
from saas.tenancy.permissions import ROLE_PERMISSIONS
from saas.tenancy.permissions import Role as AppRole

# Stable ids (``rol_`` + 16 characters) so the app and the tests can rely on them.
ROLE_IDS: dict[str, str] = {
    AppRole.OWNER: "rol_OwnerRole0000001",
    AppRole.ADMIN: "rol_AdminRole0000002",
    AppRole.MEMBER: "rol_MemberRole000003",
    AppRole.VIEWER: "rol_ViewerRole000004",
}
ROLE_DESCRIPTIONS: dict[str, str] = {
    AppRole.OWNER: "Full control of the organization, including deleting it",
    AppRole.ADMIN: "Manages members, settings, SSO and the audit log",
    AppRole.MEMBER: "Uses the product and writes projects",
    AppRole.VIEWER: "Read-only access",
}


def picture_for(email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return f"https://s.gravatar.com/avatar/{digest}?s=480&r=pg&d=identicon"


async def _upsert_clients(db: AsyncSession, clients: Sequence[ClientSpec]) -> None:
    for spec in clients:
        client = await db.get(idp.Client, spec.client_id)
        if client is None:
            client = idp.Client(client_id=spec.client_id)
            db.add(client)
        client.client_secret = spec.client_secret
        client.name = spec.name
        client.app_type = spec.app_type
        client.callbacks = list(spec.callbacks)
        client.allowed_logout_urls = list(spec.allowed_logout_urls)
        client.grant_types = list(spec.grant_types)
        client.organization_usage = spec.organization_usage
        client.initiate_login_uri = spec.initiate_login_uri
        for audience, scopes in spec.grants.items():
            grant_id = (
                "cgr_" + hashlib.sha256(f"{spec.client_id}|{audience}".encode()).hexdigest()[:16]
            )
            grant = await db.get(idp.ClientGrant, grant_id)
            if grant is None:
                grant = idp.ClientGrant(id=grant_id, client_id=spec.client_id, audience=audience)
                db.add(grant)
            grant.scope = list(scopes)
    await db.flush()


async def _upsert_roles(db: AsyncSession, audience: str) -> None:
    for app_role, perms in ROLE_PERMISSIONS.items():
        role = await db.get(idp.Role, ROLE_IDS[app_role])
        if role is None:
            role = idp.Role(id=ROLE_IDS[app_role], name=app_role.value)
            db.add(role)
        role.description = ROLE_DESCRIPTIONS[app_role]
        role.audience = audience
        role.permissions = sorted(p.value for p in perms)
    await db.flush()


def _owners() -> dict[str, str]:
    """Connection name -> the app's id of the organization whose connection it is."""
    return {
        org.connection.name: str(org.id)
        for org in demo_data.ORGANIZATIONS
        if org.connection is not None
    }


def _options(demo: demo_data.DemoConnection, settings: Settings) -> dict[str, object]:
    """What Auth0 requires of each strategy (the dev IdP's own API refuses less)."""
    if demo.strategy == "auth0":
        return {"disable_signup": False, "brute_force_protection": True}
    options: dict[str, object] = {"domain_aliases": list(demo.domains)}
    if demo.strategy == "oidc":
        # The dev IdP plays each demo enterprise IdP itself (saas/devidp/login_pages.py).
        options |= {
            "discovery_url": settings.auth0_issuer + ".well-known/openid-configuration",
            "client_id": f"{demo.name}-client",
            "type": "back_channel",
        }
    elif demo.strategy == "samlp":
        options["signInEndpoint"] = settings.auth0_issuer + f"u/login/{demo.name}"
    return options


async def _ensure_connection(
    db: AsyncSession, demo: demo_data.DemoConnection, settings: Settings
) -> idp.Connection:
    conn = await db.get(idp.Connection, demo.auth0_id)
    owner = _owners().get(demo.name)
    # As the app would have created it: owned by its organization, so that the app's sync
    # updates it instead of refusing a connection "that belongs to someone else".
    metadata = {"saas_organization_id": owner} if owner else {}
    if conn is not None:
        if owner and (conn.metadata_ or {}).get("saas_organization_id") is None:
            conn.metadata_ = {**(conn.metadata_ or {}), **metadata}
            conn.options = {**_options(demo, settings), **(conn.options or {})}
        return conn
    if conn is None:
        options = _options(demo, settings)
        conn = idp.Connection(
            id=demo.auth0_id,
            name=demo.name,
            display_name=demo.display_name,
            strategy=demo.strategy,
            options=options,
            realms=[demo.name],
            metadata_=metadata,
            is_domain_connection=False,
            enabled_clients=[],
        )
        db.add(conn)
        await db.flush()
    return conn


async def seed(
    db: AsyncSession, settings: Settings, clients: Sequence[ClientSpec], now: float
) -> None:
    await _upsert_clients(db, clients)
    await _upsert_roles(db, settings.auth0_audience)

    password_db = await _ensure_connection(db, demo_data.PASSWORD_DB, settings)
    for demo in (demo_data.ACME_SAML, demo_data.GLOBEX_OIDC):
        await _ensure_connection(db, demo, settings)
    # Every connection is usable by every registered app (Auth0's "enabled clients").
    app_ids = [c.client_id for c in clients if c.app_type != "non_interactive"]
    for conn in await db.scalars(select(idp.Connection)):
        conn.enabled_clients = sorted(set(conn.enabled_clients) | set(app_ids))

    for demo_user in demo_data.USERS:
        if await db.get(idp.User, demo_user.sub) is None:
            db.add(
                idp.User(
                    user_id=demo_user.sub,
                    email=demo_user.email.lower(),
                    email_verified=True,
                    name=demo_user.name,
                    picture=picture_for(demo_user.email),
                    connection=demo_user.connection,
                    password_hash=(
                        hash_password(demo_data.DEMO_PASSWORD)
                        if demo_user.connection == demo_data.PASSWORD_CONNECTION
                        else None
                    ),
                    groups=list(demo_user.groups),
                    created_at=now,
                    updated_at=now,
                    logins_count=0,
                )
            )
    await db.flush()

    for demo_org in demo_data.ORGANIZATIONS:
        if await db.get(idp.Organization, demo_org.auth0_id) is not None:
            continue
        db.add(
            idp.Organization(
                id=demo_org.auth0_id,
                name=demo_org.slug,
                display_name=demo_org.display_name,
                branding=None,
                metadata_={},
                created_at=now,
            )
        )
        await db.flush()
        enabled = [password_db.id]
        if demo_org.connection is not None:
            enabled.insert(0, demo_org.connection.auth0_id)
        for connection_id in enabled:
            db.add(
                idp.OrganizationConnection(
                    organization_id=demo_org.auth0_id,
                    connection_id=connection_id,
                    assign_membership_on_login=False,
                    show_as_button=True,
                    is_signup_enabled=False,
                )
            )
        for demo_user in demo_data.USERS:
            role = demo_user.memberships.get(demo_org.slug)
            if role is None:
                continue
            db.add(
                idp.Membership(
                    organization_id=demo_org.auth0_id, user_id=demo_user.sub, created_at=now
                )
            )
            db.add(
                idp.MemberRole(
                    organization_id=demo_org.auth0_id,
                    user_id=demo_user.sub,
                    role_id=ROLE_IDS[AppRole(role)],
                )
            )
        await db.flush()
