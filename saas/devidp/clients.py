"""The applications registered at the dev IdP, derived from the app's settings.

* the app: a confidential regular web app, code flow + refresh tokens, callback and logout
  URLs from APP_BASE_URL, ``organization_usage="allow"`` (it also signs users in without an
  organization and lets them pick one afterwards), and an "initiate login URI" that
  invitation links point at;
* the Management API client: machine to machine, client_credentials only, granted the
  Management API scopes the app's outbox needs.

Tests may register extra clients (e.g. one with ``organization_usage="require"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from saas.config import Settings

MANAGEMENT_SCOPES: tuple[str, ...] = (
    "read:organizations",
    "create:organizations",
    "update:organizations",
    "delete:organizations",
    "read:organization_connections",
    "create:organization_connections",
    "update:organization_connections",
    "delete:organization_connections",
    "read:organization_members",
    "create:organization_members",
    "delete:organization_members",
    "read:organization_member_roles",
    "create:organization_member_roles",
    "delete:organization_member_roles",
    "create:organization_invitations",
    "read:organization_invitations",
    "delete:organization_invitations",
    "read:roles",
    "read:connections",
    "create:connections",
    "update:connections",
    "read:users",
    "delete:sessions",
)


@dataclass(frozen=True, slots=True)
class ClientSpec:
    client_id: str
    client_secret: str
    name: str
    app_type: str = "regular_web"
    callbacks: tuple[str, ...] = ()
    allowed_logout_urls: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    organization_usage: str = "allow"
    initiate_login_uri: str | None = None
    # audience -> scopes granted for client_credentials
    grants: dict[str, tuple[str, ...]] = field(default_factory=dict)


def default_clients(settings: Settings) -> list[ClientSpec]:
    base = settings.app_base_url
    return [
        ClientSpec(
            client_id=settings.auth0_client_id,
            client_secret=settings.auth0_client_secret.get_secret_value(),
            name="SaaS starter (web app)",
            callbacks=(settings.callback_url,),
            allowed_logout_urls=(base + "/", base + "/logged-out"),
            organization_usage="allow",
            initiate_login_uri=base + "/invitation",
        ),
        ClientSpec(
            client_id=settings.auth0_management_client_id,
            client_secret=settings.auth0_management_client_secret.get_secret_value(),
            name="SaaS starter (Management API)",
            app_type="non_interactive",
            grant_types=("client_credentials",),
            organization_usage="deny",
            grants={settings.devidp_base_url + "/api/v2/": MANAGEMENT_SCOPES},
        ),
    ]
