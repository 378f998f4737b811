"""Demo tenants and users (DESIGN.md, "Demo data").

One definition serves both sides: the app's seed (`saas.demo.seed`) and the development IdP's
seed, so organization ids, connection names and user ids agree without coordination.
Everything here is development data; none of it is loaded when APP_ENV=production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

# Clearly a development credential: printed by `make run` and listed in the README.
DEMO_PASSWORD = "dev-password-123"  # noqa: S105

PASSWORD_CONNECTION = "Username-Password-Authentication"  # noqa: S105  (a name)


@dataclass(frozen=True, slots=True)
class DemoConnection:
    name: str
    auth0_id: str
    strategy: str  # samlp, oidc, auth0, ...
    display_name: str
    domains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DemoOrganization:
    slug: str
    # The app's id, fixed so the dev IdP's seed can mark the organization's connection as
    # the app's own (`metadata.saas_organization_id`, checked before every connection sync).
    id: UUID
    auth0_id: str
    display_name: str
    domains: tuple[str, ...]
    connection: DemoConnection | None
    require_sso: bool = False
    jit_provisioning: bool = False
    default_role: str = "member"


@dataclass(frozen=True, slots=True)
class DemoUser:
    email: str
    name: str
    sub: str
    connection: str
    memberships: dict[str, str] = field(default_factory=dict)  # org slug -> role
    platform_operator: bool = False
    groups: tuple[str, ...] = ()


PASSWORD_DB = DemoConnection(
    name=PASSWORD_CONNECTION,
    auth0_id="con_PasswordDemo0001",
    strategy="auth0",
    display_name="Email and password",
)
ACME_SAML = DemoConnection(
    name="acme-saml",
    auth0_id="con_AcmeSamlDemo0001",
    strategy="samlp",
    display_name="Acme Corp SAML",
    domains=("acme.example",),
)
GLOBEX_OIDC = DemoConnection(
    name="globex-oidc",
    auth0_id="con_GlobexOidcDemo01",
    strategy="oidc",
    display_name="Globex OIDC",
    domains=("globex.example",),
)

ORGANIZATIONS: tuple[DemoOrganization, ...] = (
    DemoOrganization(
        slug="acme",
        id=UUID("0192d3a0-0000-7000-8000-000000000001"),
        auth0_id="org_AcmeDemo00000001",
        display_name="Acme Corp",
        domains=("acme.example",),
        connection=ACME_SAML,
        require_sso=True,
        jit_provisioning=True,
    ),
    DemoOrganization(
        slug="globex",
        id=UUID("0192d3a0-0000-7000-8000-000000000002"),
        auth0_id="org_GlobexDemo000002",
        display_name="Globex Corporation",
        domains=("globex.example",),
        connection=GLOBEX_OIDC,
    ),
    DemoOrganization(
        slug="initech",
        id=UUID("0192d3a0-0000-7000-8000-000000000003"),
        auth0_id="org_InitechDemo00003",
        display_name="Initech",
        domains=(),
        connection=None,  # signs in through the shared password database
    ),
)

USERS: tuple[DemoUser, ...] = (
    DemoUser(
        email="alice@acme.example",
        name="Alice Anderson",
        sub="samlp|acme-saml|alice@acme.example",
        connection=ACME_SAML.name,
        memberships={"acme": "owner"},
        groups=("engineering", "acme-admins"),
    ),
    DemoUser(
        email="bob@acme.example",
        name="Bob Brown",
        sub="samlp|acme-saml|bob@acme.example",
        connection=ACME_SAML.name,
        memberships={"acme": "member"},
        groups=("engineering",),
    ),
    DemoUser(
        email="adam@acme.example",
        name="Adam Alvarez",
        sub="samlp|acme-saml|adam@acme.example",
        connection=ACME_SAML.name,
        memberships={"acme": "admin"},
        groups=("it", "acme-admins"),
    ),
    DemoUser(
        email="vera@acme.example",
        name="Vera Vance",
        sub="samlp|acme-saml|vera@acme.example",
        connection=ACME_SAML.name,
        memberships={"acme": "viewer"},
        groups=("finance",),
    ),
    DemoUser(
        email="grace@globex.example",
        name="Grace Gupta",
        sub="oidc|globex-oidc|2b9e41aa-grace",
        connection=GLOBEX_OIDC.name,
        memberships={"globex": "owner"},
        groups=("leadership",),
    ),
    DemoUser(
        email="gina@globex.example",
        name="Gina Garcia",
        sub="oidc|globex-oidc|7d1c2f0e-gina",
        connection=GLOBEX_OIDC.name,
        memberships={"globex": "admin"},
        groups=("it",),
    ),
    DemoUser(
        email="olivia@ops.example",
        name="Olivia Ortiz",
        sub="auth0|65f0c0ffee00000000000001",
        connection=PASSWORD_CONNECTION,
        memberships={"initech": "owner", "globex": "viewer"},
        platform_operator=True,
    ),
)


def organization(slug: str) -> DemoOrganization:
    return next(org for org in ORGANIZATIONS if org.slug == slug)


def user(email: str) -> DemoUser:
    return next(u for u in USERS if u.email == email)
