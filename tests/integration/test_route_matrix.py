"""The isolation matrix: every route in the app's route table, every kind of caller.

Each route has a declared expectation; a route added without one fails `test_every_route_is
_declared`. Each cell is exercised over real HTTP with a real session (signed in through the
dev IdP) or a real access token (issued by the dev IdP for the caller's organization).
"""

from __future__ import annotations

import asyncio
import datetime
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler

from saas.app import create_app
from saas.audit.services import Actor
from saas.config import Settings, load_settings
from saas.db.config import create_sqlalchemy_config
from saas.db.models import EnterpriseConnection, Organization, OutboxJob, OutboxStatus, User
from saas.invitations.services import InvitationService
from saas.members.services import MembershipService
from saas.projects.services import ProjectService
from saas.sso.services import SsoService
from saas.tenancy.guards import requires_platform_operator
from saas.tenancy.permissions import Permission, Role, has_permission
from tests.support.stack import Browser, Stack, running_stack, stack_settings
from tests.support.tokens import access_token_for

ACTORS = (
    "anonymous",
    "non_member",
    "other_tenant_owner",
    "viewer",
    "member",
    "admin",
    "owner",
    "operator",
)
EMAILS = {
    "non_member": "gina@globex.example",  # admin of globex
    "other_tenant_owner": "grace@globex.example",  # owner of globex
    "viewer": "vera@acme.example",
    "member": "bob@acme.example",
    "admin": "adam@acme.example",
    "owner": "alice@acme.example",
    "operator": "olivia@ops.example",  # platform operator; not a member of acme
}
ACME_ROLES = {
    "viewer": Role.VIEWER,
    "member": Role.MEMBER,
    "admin": Role.ADMIN,
    "owner": Role.OWNER,
}
# The organization each outsider's own API token is for.
OWN_ORG = {
    "non_member": "org_GlobexDemo000002",
    "other_tenant_owner": "org_GlobexDemo000002",
    "operator": "org_InitechDemo00003",
}
ACME_ORG_ID = "org_AcmeDemo00000001"


@dataclass(frozen=True)
class Public:
    """Same answer for everyone (or per actor where signing in changes it)."""

    status: int
    per_actor: dict[str, int] = field(default_factory=dict)
    path_params: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] | None = None

    def expected(self, actor: str) -> int:
        return self.per_actor.get(actor, self.status)


@dataclass(frozen=True)
class Tenant:
    """A tenant route guarded by `permission`; `api` routes take bearer tokens."""

    permission: Permission
    success: int
    api: bool = False
    target: str | None = None  # which fresh object the path needs: project, member, invitation
    body: Callable[[], dict[str, str]] | None = None

    def expected(self, actor: str) -> int:
        if actor == "anonymous":
            return 401 if self.api else 303
        if actor not in ACME_ROLES:
            # Outsiders, with a session or with a token for their own organization, learn
            # nothing about acme: the same 404 as for an organization that does not exist.
            return 404
        return self.success if has_permission(ACME_ROLES[actor], self.permission) else 403


@dataclass(frozen=True)
class Operator:
    """A platform-operator route: it does not exist for anyone else (404)."""

    success: int
    target: str | None = None  # "job": a failed outbox job
    body: Callable[[], dict[str, str]] | None = None

    def expected(self, actor: str) -> int:
        if actor == "anonymous":
            return 303
        return self.success if actor == "operator" else 404


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
Rule = Public | Tenant | Operator
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
    ("GET", "/static/{file_path:path}"): Public(200, path_params={"file_path": "css/app.css"}),
    ("GET", "/login"): Public(200),
    ("POST", "/login"): Public(303, data={"email": "someone@example.com"}),
    ("GET", "/o/{slug:str}/login"): Public(303),
    ("GET", "/callback"): Public(400),  # no pending login for this state: refused
    ("GET", "/invitation"): Public(400),  # required parameters missing
    ("GET", "/logged-out"): Public(200),
    ("GET", "/select-organization"): Public(303, per_actor={"operator": 200}),
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
    ("GET", "/o/{slug:str}/settings/sso"): Tenant(P.ORG_MANAGE, 200),
    ("POST", "/o/{slug:str}/settings/sso"): Tenant(
        P.ORG_MANAGE, 422, body=lambda: {"strategy": "oidc", "discovery_url": "ftp://nope"}
    ),
    ("GET", "/o/{slug:str}/settings/sso/test"): Tenant(P.ORG_MANAGE, 303, target="sso"),
    ("POST", "/o/{slug:str}/settings/sso/delete"): Tenant(P.ORG_MANAGE, 303, target="sso"),
    # Retry one of acme's failed jobs (a fresh one per cell; the tenant admin's retry of
    # another organization's job is refused in test_sync_state.py).
    ("POST", "/o/{slug:str}/settings/sso/jobs/{job_id:uuid}/retry"): Tenant(
        P.ORG_MANAGE, 303, target="job"
    ),
    # Near the end, because they change who belongs to acme. Ownership first: the owner hands
    # acme to a fresh member (and becomes an admin), so that every acme actor may then leave.
    ("POST", "/o/{slug:str}/members/{member_id:uuid}/transfer-ownership"): Tenant(
        P.OWNERSHIP, 303, target="member"
    ),
    ("POST", "/o/{slug:str}/members/leave"): Tenant(P.MEMBERS_READ, 303),
    # Last, because it ends each actor's session.
    ("POST", "/logout"): Public(303),
}


def route_table(app: Litestar) -> dict[tuple[str, str], HTTPRouteHandler]:
    table: dict[tuple[str, str], HTTPRouteHandler] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler):
                continue
            for method in handler.http_methods:
                if method not in {"OPTIONS", "HEAD"}:
                    table[(method, route.path)] = handler
    return table


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


async def _acme(settings: Settings, work: Callable[[Any, Organization], Any]) -> Any:
    config = create_sqlalchemy_config(settings)
    try:
        async with config.get_session() as session:
            from sqlalchemy import select

            org = (
                await session.execute(select(Organization).where(Organization.slug == "acme"))
            ).scalar_one()
            result = await work(session, org)
            await session.commit()
            return result
    finally:
        await config.get_engine().dispose()


def fresh_target(settings: Settings, kind: str) -> str:
    async def make(session: Any, org: Organization) -> str:
        if kind == "project":
            project = await ProjectService(session=session, organization_id=org.id).create_project(
                name=f"Target {uuid.uuid4().hex[:10]}", actor=Actor.system()
            )
            return str(project.id)
        if kind == "sso":
            if not await SsoService(session, org, settings).current():
                session.add(
                    EnterpriseConnection(
                        organization_id=org.id,
                        auth0_connection_name="acme-saml",
                        auth0_connection_id="con_AcmeSamlDemo0001",
                        strategy="samlp",
                        display_name="Acme Corp SAML",
                    )
                )
            return ""
        if kind == "job":
            # Acme's: the operator may retry any organization's, a tenant admin only their own.
            job = OutboxJob(
                kind="matrix.failed",
                payload={},
                status=OutboxStatus.FAILED.value,
                attempts=8,
                organization_id=org.id,
                target_type="organization",
                target_id=org.id,
            )
            session.add(job)
            await session.flush()
            return str(job.id)
        if kind == "member":
            user = User(
                sub=f"auth0|matrix-{uuid.uuid4().hex}",
                email=f"m-{uuid.uuid4().hex[:8]}@acme.example",
            )
            session.add(user)
            await session.flush()
            membership = await MembershipService(session=session).add(
                organization_id=org.id, user_id=user.id, role=Role.MEMBER, actor=Actor.system()
            )
            return str(membership.id)
        invitation, _ = await InvitationService(session=session).invite(
            organization_id=org.id,
            email=f"i-{uuid.uuid4().hex[:8]}@acme.example",
            role=Role.MEMBER,
            actor=Actor.system(),
            authority=None,
            ttl=datetime.timedelta(days=1),
        )
        return str(invitation.id)

    return str(asyncio.run(_acme(settings, make)))


_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


@dataclass
class Caller:
    actor: str
    browser: Browser
    token: str | None = None
    csrf: str = ""


@pytest.fixture
def matrix_stack(database_url: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(stack_settings(database_url, tmp_path)) as stack:
        yield stack


def sign_in_callers(stack: Stack) -> dict[str, Caller]:
    callers = {}
    for actor in ACTORS:
        browser = stack.browser()
        token = None
        if actor != "anonymous":
            browser.login(EMAILS[actor])
            token = access_token_for(browser, OWN_ORG.get(actor, ACME_ORG_ID))
            if actor in ACME_ROLES:
                # Make acme the session's active organization.
                page = browser.follow(browser.get("/o/acme/login?silent=true"))
                assert page.status_code == 200, (actor, page.status_code)
        csrf = _CSRF.search(browser.get("/login").text)
        assert csrf
        callers[actor] = Caller(actor, browser, token, csrf[1])
    return callers


def request_cell(
    stack: Stack, caller: Caller, method: str, path: str, rule: Rule
) -> httpx.Response:
    params = {"slug": "acme", "org": "acme"}
    body: dict[str, str] | None = None
    if isinstance(rule, Public):
        params.update(rule.path_params)
        body = rule.data
    elif isinstance(rule, Operator):
        if rule.target:
            params[f"{rule.target}_id"] = fresh_target(stack.settings, rule.target)
        body = rule.body() if rule.body else None
    else:
        if rule.target:
            params[f"{rule.target}_id"] = fresh_target(stack.settings, rule.target)
        body = rule.body() if rule.body else None
    url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: params[m[1]], path)
    headers = {"x-csrftoken": caller.csrf}
    if isinstance(rule, Tenant) and rule.api:
        if caller.token:
            headers["authorization"] = f"Bearer {caller.token}"
        return caller.browser.client.request(
            method, stack.app_url + url, json=body, headers=headers
        )
    return caller.browser.client.request(method, stack.app_url + url, data=body, headers=headers)


def test_isolation_matrix(matrix_stack: Stack) -> None:
    callers = sign_in_callers(matrix_stack)
    mismatches = []
    cells = 0
    for (method, path), rule in ROUTES.items():
        for actor in ACTORS:
            response = request_cell(matrix_stack, callers[actor], method, path, rule)
            cells += 1
            expected = rule.expected(actor)
            if response.status_code != expected:
                mismatches.append(
                    f"{method} {path} as {actor}: {response.status_code}, expected {expected}"
                )
            elif expected >= 500:
                mismatches.append(f"{method} {path} as {actor}: server error")
    for caller in callers.values():
        caller.browser.close()
    assert not mismatches, f"{len(mismatches)} of {cells} cells differ:\n" + "\n".join(mismatches)
