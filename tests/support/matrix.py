"""The isolation matrix's machinery: who calls (every kind of actor, signed in through the dev
IdP, with real sessions and real access tokens), what each kind of route expects of them, and
one run over a table of routes. `tests/integration/test_route_matrix.py` declares the app's
table; `tests/integration/test_adding_a_route.py` runs it over a route added as the README says.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from sqlalchemy import delete

from saas.audit.services import Actor
from saas.config import Settings
from saas.db.models import (
    EnterpriseConnection,
    Organization,
    OrganizationDomain,
    OutboxJob,
    OutboxStatus,
    User,
)
from saas.invitations.services import InvitationService
from saas.members.services import MembershipService
from saas.organizations.services import OrganizationService
from saas.projects.services import ProjectService
from saas.sso.services import SsoService
from saas.tenancy.caller import Caller as TenantCaller
from saas.tenancy.permissions import Permission, Role, has_permission
from tests.support.stack import Browser, OrganizationSession, Stack
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


@dataclass(frozen=True)
class Scim:
    """A SCIM route (/scim/v2/...): only an organization's SCIM token opens it. No actor holds
    one (a session is not one, nor is an Auth0 access token), so each gets the SCIM 401; the
    tokens themselves are tested per organization in tests/integration/test_directory_sync.py."""

    body: Callable[[], dict[str, Any]] | None = None

    def expected(self, actor: str) -> int:
        return 401


Rule = Public | Tenant | Operator | Scim


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


def fresh_target(acme: OrganizationSession, settings: Settings, kind: str) -> str:
    async def make(session: Any, org: Organization) -> str:
        if kind == "project":
            project = await ProjectService(
                session=session, caller=TenantCaller.system(org)
            ).create_project(f"Target {uuid.uuid4().hex[:10]}")
            return str(project.id)
        if kind == "sso":
            if not await SsoService(session, TenantCaller.system(org), settings).current():
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
        if kind == "domain":
            # One pending target at a time: the cells refused leave theirs behind, and acme
            # may have only MAX_PENDING_DOMAINS unverified domains.
            await session.execute(
                delete(OrganizationDomain).where(
                    OrganizationDomain.organization_id == org.id,
                    OrganizationDomain.domain.like("m%.example"),
                    OrganizationDomain.verified_at.is_(None),
                )
            )
            domain = await OrganizationService(session=session).add_domain(
                organization_id=org.id,
                domain=f"m{uuid.uuid4().hex[:10]}.example",
                actor=Actor.system(),
            )
            return str(domain.id)
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
        if kind == "token":
            # Written directly: the settings page caps an organization's active tokens, and
            # the matrix makes one per cell.
            from saas.db.models import ScimToken
            from saas.scim.tokens import hash_token, new_token

            secret = new_token()
            token = ScimToken(
                organization_id=org.id,
                name=f"Matrix {uuid.uuid4().hex[:8]}",
                token_hash=hash_token(secret),
                hint=secret[-4:],
            )
            session.add(token)
            await session.flush()
            return str(token.id)
        if kind == "group":
            from saas.db.models import DirectoryGroup

            name = f"Matrix group {uuid.uuid4().hex[:8]}"
            group = DirectoryGroup(
                organization_id=org.id, display_name=name, display_name_key=name.casefold()
            )
            session.add(group)
            await session.flush()
            return str(group.id)
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

    return acme(make)


_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


@dataclass
class Caller:
    actor: str
    browser: Browser
    token: str | None = None
    csrf: str = ""


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
    stack: Stack, acme: OrganizationSession, caller: Caller, method: str, path: str, rule: Rule
) -> httpx.Response:
    params = {"slug": "acme", "org": "acme"}
    body: dict[str, str] | None = None
    if isinstance(rule, Scim):
        params.update(resource_id=str(uuid.uuid4()), item_id="User")
        url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: params[m[1]], path)
        # The caller's own Auth0 access token, where it has one: not a SCIM token either.
        headers = {"authorization": f"Bearer {caller.token}"} if caller.token else {}
        return caller.browser.client.request(
            method, stack.app_url + url, json=rule.body() if rule.body else None, headers=headers
        )
    if isinstance(rule, Public):
        params.update(rule.path_params)
        body = rule.data
    elif isinstance(rule, Operator):
        if rule.target:
            params[f"{rule.target}_id"] = fresh_target(acme, stack.settings, rule.target)
        body = rule.body() if rule.body else None
    else:
        if rule.target:
            params[f"{rule.target}_id"] = fresh_target(acme, stack.settings, rule.target)
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


def run_matrix(stack: Stack, routes: Mapping[tuple[str, str], Rule]) -> tuple[list[str], int]:
    """Every route of `routes` as every actor: the cells whose answer differs from the
    expectation (or is a server error), and how many cells ran."""
    callers = sign_in_callers(stack)
    mismatches = []
    cells = 0
    try:
        with OrganizationSession(stack.settings) as acme:
            for (method, path), rule in routes.items():
                for actor in ACTORS:
                    response = request_cell(stack, acme, callers[actor], method, path, rule)
                    cells += 1
                    expected = rule.expected(actor)
                    if response.status_code != expected:
                        mismatches.append(
                            f"{method} {path} as {actor}: {response.status_code}, "
                            f"expected {expected}"
                        )
                    elif expected >= 500:
                        mismatches.append(f"{method} {path} as {actor}: server error")
    finally:
        for caller in callers.values():
            caller.browser.close()
    return mismatches, cells
