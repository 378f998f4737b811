"""The isolation matrix: every route in the app's route table, every kind of caller.

Each route has a declared expectation; a route added without one fails `test_every_route_is
_declared`. Each cell is exercised over real HTTP with a real session (signed in through the
dev IdP) or a real access token (issued by the dev IdP for the caller's organization).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from saas.app import create_app
from saas.config import load_settings
from saas.db.models import Organization
from saas.tenancy.guards import requires_platform_operator
from saas.tenancy.permissions import Permission
from tests.support.dns_server import TxtZone
from tests.support.matrix import (
    ACME_ROLES,
    ACTORS,
    Operator,
    Public,
    Rule,
    Scim,
    Tenant,
    request_cell,
    route_table,
    run_matrix,
    sign_in_callers,
)
from tests.support.stack import OrganizationSession, Stack

pytestmark = pytest.mark.long_module


def unique_slug_form() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {"slug": f"org-{suffix}", "display_name": f"Org {suffix}", "connection_strategy": "oidc"}


def unique_domain() -> dict[str, str]:
    return {"domain": f"d{uuid.uuid4().hex[:8]}.example"}


def unique_connection() -> dict[str, str]:
    return {"name": f"conn-{uuid.uuid4().hex[:8]}", "strategy": "oidc"}


def unique_owner() -> dict[str, str]:
    return {"email": f"owner-{uuid.uuid4().hex[:8]}@acme.example"}


def unique_name() -> dict[str, str]:
    return {"name": f"Project {uuid.uuid4().hex[:10]}"}


def unique_invitee() -> dict[str, str]:
    return {"email": f"invitee-{uuid.uuid4().hex[:10]}@acme.example", "role": "member"}


P = Permission
ROUTES: dict[tuple[str, str], Rule] = {
    # The operator console.
    ("GET", "/admin"): Operator(200),
    ("GET", "/admin/organizations/new"): Operator(200),
    ("POST", "/admin/organizations"): Operator(303, body=unique_slug_form),
    ("GET", "/admin/organizations/{slug:str}"): Operator(200),
    ("POST", "/admin/organizations/{slug:str}/domains"): Operator(303, body=unique_domain),
    ("POST", "/admin/organizations/{slug:str}/domains/verify"): Operator(
        303,
        body=lambda: {"domain": "acme.example"},  # verified already: a no-op
    ),
    ("POST", "/admin/organizations/{slug:str}/connections"): Operator(303, body=unique_connection),
    ("POST", "/admin/organizations/{slug:str}/invite-owner"): Operator(303, body=unique_owner),
    ("POST", "/admin/organizations/{slug:str}/status"): Operator(
        303, body=lambda: {"status": "active"}
    ),
    ("GET", "/admin/outbox"): Operator(200),
    ("POST", "/admin/outbox/{job_id:uuid}/retry"): Operator(303, target="job"),
    ("GET", "/health"): Public(200),
    ("GET", "/"): Public(200),
    ("GET", "/account/nav"): Public(200),
    ("GET", "/favicon.ico"): Public(301),
    ("GET", "/static/{file_path:path}"): Public(200, path_params={"file_path": "css/app.css"}),
    ("GET", "/login"): Public(200),
    ("POST", "/login"): Public(303, data={"email": "someone@example.com"}),
    ("GET", "/o/{slug:str}/login"): Public(303),
    ("GET", "/callback"): Public(400),  # no pending login for this state: refused
    ("GET", "/invitation"): Public(400),  # required parameters missing
    ("GET", "/logged-out"): Public(200),
    ("GET", "/select-organization"): Public(303, per_actor={"operator": 200}),
    # Your sessions: each signed-in person's own; the anonymous are sent to sign in.
    ("GET", "/account/sessions"): Public(200, per_actor={"anonymous": 303}),
    ("POST", "/account/sessions/end"): Public(303, data={"session": "0" * 32}),
    ("POST", "/account/sessions/end-others"): Public(303),
    ("GET", "/api/docs"): Public(200),
    ("GET", "/api/docs/openapi.json"): Public(200),
    ("GET", "/api/docs/scalar"): Public(200),
    ("GET", "/api/docs/swagger"): Public(200),
    ("GET", "/api/docs/oauth2-redirect.html"): Public(200),
    # Unknown renderer names under the docs path are plain 404s.
    ("GET", "/api/docs/{path:str}"): Public(404, path_params={"path": "no-such-renderer"}),
    # Tenant pages (session).
    ("GET", "/o/{slug:str}"): Tenant(P.ORG_READ, 200),
    ("GET", "/o/{slug:str}/projects"): Tenant(P.ORG_READ, 200),
    ("POST", "/o/{slug:str}/projects"): Tenant(P.PROJECTS_WRITE, 303, body=unique_name),
    ("POST", "/o/{slug:str}/projects/{project_id:uuid}/rename"): Tenant(
        P.PROJECTS_WRITE, 303, target="project", body=unique_name
    ),
    ("POST", "/o/{slug:str}/projects/{project_id:uuid}/delete"): Tenant(
        P.PROJECTS_WRITE, 303, target="project"
    ),
    # The member-management dashboard (session, htmx or plain forms).
    ("GET", "/o/{slug:str}/members"): Tenant(P.MEMBERS_READ, 200),
    ("POST", "/o/{slug:str}/members/{member_id:uuid}/role"): Tenant(
        P.MEMBERS_MANAGE, 303, target="member", body=lambda: {"role": "viewer"}
    ),
    ("POST", "/o/{slug:str}/members/{member_id:uuid}/remove"): Tenant(
        P.MEMBERS_MANAGE, 303, target="member"
    ),
    ("POST", "/o/{slug:str}/members/invitations"): Tenant(
        P.MEMBERS_INVITE, 303, body=unique_invitee
    ),
    ("POST", "/o/{slug:str}/members/invitations/{invitation_id:uuid}/resend"): Tenant(
        P.MEMBERS_INVITE, 303, target="invitation"
    ),
    ("POST", "/o/{slug:str}/members/invitations/{invitation_id:uuid}/revoke"): Tenant(
        P.MEMBERS_INVITE, 303, target="invitation"
    ),
    ("GET", "/o/{slug:str}/audit"): Tenant(P.AUDIT_READ, 200),
    # Organization settings: the name and the email domains (org:manage).
    ("GET", "/o/{slug:str}/settings/organization"): Tenant(P.ORG_MANAGE, 200),
    ("POST", "/o/{slug:str}/settings/organization/name"): Tenant(
        P.ORG_MANAGE, 303, body=lambda: {"display_name": "Acme Corp"}
    ),
    ("POST", "/o/{slug:str}/settings/organization/domains"): Tenant(
        P.ORG_MANAGE, 303, body=unique_domain
    ),
    # A fresh unverified domain per cell: verifying finds no TXT record (a form error, 422),
    # removing it succeeds.
    ("POST", "/o/{slug:str}/settings/organization/domains/{domain_id:uuid}/verify"): Tenant(
        P.ORG_MANAGE, 422, target="domain"
    ),
    ("POST", "/o/{slug:str}/settings/organization/domains/{domain_id:uuid}/remove"): Tenant(
        P.ORG_MANAGE, 303, target="domain"
    ),
    # The JSON API (bearer tokens).
    ("GET", "/api/v1/orgs/{org:str}"): Tenant(P.ORG_READ, 200, api=True),
    ("GET", "/api/v1/orgs/{org:str}/members"): Tenant(P.MEMBERS_READ, 200, api=True),
    ("PATCH", "/api/v1/orgs/{org:str}/members/{member_id:uuid}"): Tenant(
        P.MEMBERS_MANAGE, 200, api=True, target="member", body=lambda: {"role": "viewer"}
    ),
    ("DELETE", "/api/v1/orgs/{org:str}/members/{member_id:uuid}"): Tenant(
        P.MEMBERS_MANAGE, 204, api=True, target="member"
    ),
    ("GET", "/api/v1/orgs/{org:str}/invitations"): Tenant(P.MEMBERS_INVITE, 200, api=True),
    ("POST", "/api/v1/orgs/{org:str}/invitations"): Tenant(
        P.MEMBERS_INVITE, 201, api=True, body=unique_invitee
    ),
    ("DELETE", "/api/v1/orgs/{org:str}/invitations/{invitation_id:uuid}"): Tenant(
        P.MEMBERS_INVITE, 204, api=True, target="invitation"
    ),
    ("GET", "/api/v1/orgs/{org:str}/projects"): Tenant(P.ORG_READ, 200, api=True),
    ("GET", "/api/v1/orgs/{org:str}/projects/{project_id:uuid}"): Tenant(
        P.ORG_READ, 200, api=True, target="project"
    ),
    ("POST", "/api/v1/orgs/{org:str}/projects"): Tenant(
        P.PROJECTS_WRITE, 201, api=True, body=unique_name
    ),
    ("PATCH", "/api/v1/orgs/{org:str}/projects/{project_id:uuid}"): Tenant(
        P.PROJECTS_WRITE, 200, api=True, target="project", body=unique_name
    ),
    ("DELETE", "/api/v1/orgs/{org:str}/projects/{project_id:uuid}"): Tenant(
        P.PROJECTS_WRITE, 204, api=True, target="project"
    ),
    # Self-service SSO (each cell first makes sure acme has its SAML connection).
    # The security policy: owners only. The body changes nothing (no MFA, platform timeouts),
    # so the owner's later cells are not asked to step up.
    ("GET", "/o/{slug:str}/settings/security"): Tenant(P.OWNERSHIP, 200),
    ("POST", "/o/{slug:str}/settings/security"): Tenant(
        P.OWNERSHIP, 303, body=lambda: {"idle_minutes": "", "absolute_minutes": ""}
    ),
    ("GET", "/o/{slug:str}/settings/sso"): Tenant(P.ORG_MANAGE, 200),
    ("POST", "/o/{slug:str}/settings/sso"): Tenant(
        P.ORG_MANAGE, 422, body=lambda: {"strategy": "oidc", "discovery_url": "ftp://nope"}
    ),
    ("GET", "/o/{slug:str}/settings/sso/test"): Tenant(P.ORG_MANAGE, 303, target="sso"),
    ("GET", "/o/{slug:str}/settings/sso/test/result"): Tenant(P.ORG_MANAGE, 200),
    ("GET", "/o/{slug:str}/settings/sso/metadata.xml"): Tenant(P.ORG_MANAGE, 200),
    ("POST", "/o/{slug:str}/settings/sso/delete"): Tenant(P.ORG_MANAGE, 303, target="sso"),
    # Retry one of acme's failed jobs (a fresh one per cell; the tenant admin's retry of
    # another organization's job is refused in test_sync_state.py).
    ("POST", "/o/{slug:str}/settings/sso/jobs/{job_id:uuid}/retry"): Tenant(
        P.ORG_MANAGE, 303, target="job"
    ),
    # Directory sync: the settings page (org:manage) and each organization's SCIM service,
    # which only that organization's SCIM token opens (never a session or an access token).
    ("GET", "/o/{slug:str}/settings/directory"): Tenant(P.ORG_MANAGE, 200),
    ("POST", "/o/{slug:str}/settings/directory/tokens"): Tenant(
        P.ORG_MANAGE, 200, body=lambda: {"name": f"IdP {uuid.uuid4().hex[:8]}"}
    ),
    ("POST", "/o/{slug:str}/settings/directory/tokens/{token_id:uuid}/rotate"): Tenant(
        P.ORG_MANAGE, 200, target="token"
    ),
    ("POST", "/o/{slug:str}/settings/directory/tokens/{token_id:uuid}/revoke"): Tenant(
        P.ORG_MANAGE, 303, target="token"
    ),
    ("POST", "/o/{slug:str}/settings/directory/groups/{group_id:uuid}/role"): Tenant(
        P.ORG_MANAGE, 303, target="group", body=lambda: {"role": "viewer"}
    ),
    ("GET", "/scim/v2/ServiceProviderConfig"): Scim(),
    ("GET", "/scim/v2/ResourceTypes"): Scim(),
    ("GET", "/scim/v2/ResourceTypes/{item_id:str}"): Scim(),
    ("GET", "/scim/v2/Schemas"): Scim(),
    ("GET", "/scim/v2/Schemas/{item_id:str}"): Scim(),
    ("POST", "/scim/v2/.search"): Scim(body=lambda: {"filter": 'userName eq "x"'}),
    ("POST", "/scim/v2/Users/.search"): Scim(body=lambda: {"filter": 'userName eq "x"'}),
    ("POST", "/scim/v2/Groups/.search"): Scim(body=lambda: {"filter": 'displayName eq "x"'}),
    ("GET", "/scim/v2/Users"): Scim(),
    ("POST", "/scim/v2/Users"): Scim(body=lambda: {"userName": "matrix@acme.example"}),
    ("GET", "/scim/v2/Users/{resource_id:str}"): Scim(),
    ("PUT", "/scim/v2/Users/{resource_id:str}"): Scim(body=lambda: {"userName": "m@acme.example"}),
    ("PATCH", "/scim/v2/Users/{resource_id:str}"): Scim(body=lambda: {"Operations": []}),
    ("DELETE", "/scim/v2/Users/{resource_id:str}"): Scim(),
    ("GET", "/scim/v2/Groups"): Scim(),
    ("POST", "/scim/v2/Groups"): Scim(body=lambda: {"displayName": "Matrix"}),
    ("GET", "/scim/v2/Groups/{resource_id:str}"): Scim(),
    ("PUT", "/scim/v2/Groups/{resource_id:str}"): Scim(body=lambda: {"displayName": "Matrix"}),
    ("PATCH", "/scim/v2/Groups/{resource_id:str}"): Scim(body=lambda: {"Operations": []}),
    ("DELETE", "/scim/v2/Groups/{resource_id:str}"): Scim(),
    # Near the end, because they change who belongs to acme. Ownership first: the owner hands
    # acme to a fresh member (and becomes an admin), so that every acme actor may then leave.
    ("POST", "/o/{slug:str}/members/{member_id:uuid}/transfer-ownership"): Tenant(
        P.OWNERSHIP, 303, target="member"
    ),
    ("POST", "/o/{slug:str}/members/leave"): Tenant(P.MEMBERS_READ, 303),
    # Last, because it ends each actor's session.
    ("POST", "/logout"): Public(303),
}


def test_every_route_is_declared_with_its_guard() -> None:
    table = route_table(create_app(load_settings(app_env="test")))
    undeclared = sorted(set(table) - set(ROUTES))
    assert not undeclared, f"routes without an expectation in the matrix: {undeclared}"
    stale = sorted(set(ROUTES) - set(table))
    assert not stale, f"declared routes that no longer exist: {stale}"
    for key, rule in ROUTES.items():
        resolved = table[key].resolve_guards()
        guards = [g for g in resolved if hasattr(g, "permission")]
        is_operator_route = requires_platform_operator in resolved
        if isinstance(rule, Tenant):
            assert [getattr(g, "permission", None) for g in guards] == [rule.permission], key
        else:
            assert not guards, f"{key} is declared public but has a permission guard"
        assert is_operator_route == isinstance(rule, Operator), key


# ---- exercising every cell -------------------------------------------------------------


@pytest.fixture
def stack_overrides(dns: tuple[str, TxtZone]) -> dict[str, object]:
    # Domain verification asks the run's own DNS server (an empty zone), never the network.
    return {"dns_nameserver": dns[0]}


@pytest.fixture
def matrix_stack(stack: Stack) -> Stack:
    return stack


# Every route as every actor, over real HTTP: some 600 cells, past the suite's 120 s default on
# a loaded machine (143 s measured with 2 cores shared).
@pytest.mark.timeout(360)
def test_isolation_matrix(matrix_stack: Stack) -> None:
    mismatches, cells = run_matrix(matrix_stack, ROUTES)
    assert not mismatches, f"{len(mismatches)} of {cells} cells differ:\n" + "\n".join(mismatches)


def test_every_api_route_wants_mfa_tokens_of_an_organization_that_requires_it(
    matrix_stack: Stack,
) -> None:
    """Acme requires MFA; every caller's token is of a sign-in without it. Every API route
    refuses acme's members with `mfa_required`, whatever their role (before the permission
    check and the handler: nothing is done), and tells everyone else what it always does."""
    stack = matrix_stack
    callers = sign_in_callers(stack)

    async def require(session: AsyncSession, org: Organization) -> None:
        await session.execute(
            update(Organization).where(Organization.id == org.id).values(require_mfa=True)
        )

    mismatches = []
    try:
        with OrganizationSession(stack.settings) as acme:
            acme(require)
            for (method, path), rule in ROUTES.items():
                if not (isinstance(rule, Tenant) and rule.api):
                    continue
                for actor in ACTORS:
                    response = request_cell(stack, acme, callers[actor], method, path, rule)
                    if actor in ACME_ROLES:
                        code = response.json().get("code") if response.status_code == 403 else None
                        if code != "mfa_required":
                            mismatches.append(
                                f"{method} {path} as {actor}: {response.status_code} {code}, "
                                "expected 403 mfa_required"
                            )
                    elif response.status_code != rule.expected(actor):
                        mismatches.append(
                            f"{method} {path} as {actor}: {response.status_code}, "
                            f"expected {rule.expected(actor)}"
                        )
    finally:
        for caller in callers.values():
            caller.browser.close()
    assert not mismatches, "\n".join(mismatches)
