"""Races on unique values, over real HTTP (and the CLI) on both databases.

Each test holds the database's writers at a gate (tests/support/write_gate.py) while two
requests run, so both pass their "is it taken?" check before either inserts: the race is
certain, not hoped for. Whatever the timing, each ends with exactly one row and no 500: a
conflict is a 409 (problem details for the API, the form's own error for HTML), and the
just-in-time sign-in race simply succeeds for both tabs.
"""

from __future__ import annotations

import asyncio
import re
import threading
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from saas.audit.services import Actor
from saas.config import Settings
from saas.db.config import create_sqlalchemy_config
from saas.db.models import (
    EnterpriseConnection,
    Membership,
    Organization,
    OrganizationDomain,
    Project,
    User,
)
from saas.demo.data import DEMO_PASSWORD
from saas.errors import Conflict
from saas.login.membership import resolve_membership
from saas.organizations.cli import orgs
from saas.organizations.services import OrganizationService
from saas.projects.services import ProjectService
from saas.tenancy.caller import Caller
from saas.users.services import UserService
from tests.support.stack import Browser, Stack
from tests.support.tokens import access_token_for
from tests.support.write_gate import writes_held

ACME = "org_AcmeDemo00000001"
PROBLEM_JSON = "application/problem+json"
_FORM_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


# No in-process outbox worker: its polling would be one more writer at the gate.
pytestmark = pytest.mark.stack(outbox_worker_enabled=False)


async def count(settings: Settings, statement: Any) -> int:
    config = create_sqlalchemy_config(settings)
    try:
        async with config.get_session() as session:
            return int(await session.scalar(statement) or 0)
    finally:
        await config.get_engine().dispose()


async def race(
    stack: Stack, table: str, *requests: Any, client: httpx.AsyncClient
) -> list[httpx.Response]:
    """Start every request while writes to `table` are held, release them together."""
    async with writes_held(stack.settings.database_url, table) as gate:
        tasks = [asyncio.create_task(request(client)) for request in requests]
        await gate.wait_for_writers(len(tasks))
        finished = [task.result() for task in tasks if task.done()]
        assert not finished, f"a request finished without writing: {finished}"
    return list(await asyncio.gather(*tasks))


def operator(stack: Stack) -> tuple[Browser, str]:
    browser = stack.browser()
    browser.login("olivia@ops.example")
    token = _FORM_CSRF.search(browser.get("/admin/organizations/new").text)
    assert token
    return browser, token[1]


def assert_no_500(responses: list[httpx.Response]) -> None:
    assert all(r.status_code < 500 for r in responses), [(r.status_code, r.text) for r in responses]


# ---- projects ---------------------------------------------------------------------------


async def test_two_projects_with_one_name_through_the_api(stack: Stack) -> None:
    alice = stack.browser()
    alice.login("alice@acme.example")
    headers = {"Authorization": f"Bearer {access_token_for(alice, ACME)}"}
    url = stack.app_url + "/api/v1/orgs/acme/projects/"

    def create(client: httpx.AsyncClient) -> Any:
        return client.post(url, json={"name": "Roadmap"}, headers=headers)

    async with httpx.AsyncClient(timeout=30) as client:
        responses = await race(stack, "projects", create, create, client=client)

    assert_no_500(responses)
    assert sorted(r.status_code for r in responses) == [201, 409]
    conflict = next(r for r in responses if r.status_code == 409)
    assert conflict.headers["content-type"].startswith(PROBLEM_JSON)
    assert conflict.json()["status"] == 409
    assert "exists already" in conflict.json()["detail"]
    assert await count(stack.settings, select(func.count()).where(Project.name == "Roadmap")) == 1


async def test_two_projects_with_one_name_on_the_dashboard(stack: Stack) -> None:
    alice = stack.browser()
    page = alice.login("alice@acme.example")
    token = _META_CSRF.search(page.text)
    assert token
    headers = {"HX-Request": "true", "X-CSRFToken": token[1]}
    url = stack.app_url + "/o/acme/projects/"

    def create(client: httpx.AsyncClient) -> Any:
        return client.post(url, data={"name": "Roadmap"}, headers=headers)

    async with httpx.AsyncClient(cookies=alice.client.cookies, timeout=30) as client:
        responses = await race(stack, "projects", create, create, client=client)

    assert_no_500(responses)
    assert sorted(r.status_code for r in responses) == [200, 409]
    refused = next(r for r in responses if r.status_code == 409)
    # The new-project form's fragment with its own error, which htmx swaps in place of the form
    # (not an error page, and not the whole panel: the list beside it stays).
    assert 'id="project-create"' in refused.text
    assert "<html" not in refused.text
    assert refused.headers["HX-Retarget"] == "#project-create"
    assert "exists already" in refused.text
    assert await count(stack.settings, select(func.count()).where(Project.name == "Roadmap")) == 1


async def test_rename_of_a_project_deleted_meanwhile_is_a_404(stack: Stack) -> None:
    alice = stack.browser()
    alice.login("alice@acme.example")
    headers = {"Authorization": f"Bearer {access_token_for(alice, ACME)}"}
    base = stack.app_url + "/api/v1/orgs/acme/projects/"

    async with httpx.AsyncClient(timeout=30) as client:
        created = await client.post(base, json={"name": "Roadmap"}, headers=headers)
        assert created.status_code == 201, created.text
        project_id = created.json()["id"]
        # The deletion is made and held uncommitted; the rename reads the project, then its
        # UPDATE waits for the deletion, which commits and leaves it nothing to update.
        async with writes_held(
            stack.settings.database_url,
            "projects",
            meanwhile="DELETE FROM projects WHERE name = 'Roadmap'",
        ) as gate:
            rename = asyncio.create_task(
                client.patch(base + project_id, json={"name": "Plan"}, headers=headers)
            )
            await gate.wait_for_writers(1)
            assert not rename.done()
        response = await rename

    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert await count(stack.settings, select(func.count()).select_from(Project)) == 0


@pytest.mark.parametrize("via", ["api", "html"])
async def test_two_projects_renamed_to_one_name_at_once(stack: Stack, via: str) -> None:
    """Where no check at the source catches this one, the database's refusal is mapped
    centrally."""
    alice = stack.browser()
    page = alice.login("alice@acme.example")
    token = _META_CSRF.search(page.text)
    assert token
    api = {"Authorization": f"Bearer {access_token_for(alice, ACME)}"}
    base = stack.app_url + "/api/v1/orgs/acme/projects/"

    async with httpx.AsyncClient(cookies=alice.client.cookies, timeout=30) as client:
        ids = []
        for name in ("Roadmap", "Backlog"):
            created = await client.post(base, json={"name": name}, headers=api)
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])

        def rename(project_id: str) -> Any:
            if via == "api":
                return lambda c: c.patch(base + project_id, json={"name": "Plan"}, headers=api)
            url = stack.app_url + f"/o/acme/projects/{project_id}/rename"
            return lambda c: c.post(url, data={"name": "Plan"}, headers={"X-CSRFToken": token[1]})

        responses = await race(stack, "projects", *(rename(i) for i in ids), client=client)

    assert_no_500(responses)
    assert sorted(r.status_code for r in responses) == ([200, 409] if via == "api" else [303, 409])
    refused = next(r for r in responses if r.status_code == 409)
    if via == "api":
        assert refused.headers["content-type"].startswith(PROBLEM_JSON)
        assert refused.json()["title"] == "Conflict"
    else:
        assert refused.headers["content-type"].startswith("text/html")
        # On SQLite the write re-reads authority under the organization lock, which serializes
        # the two renames: the second sees the first's row and answers with the form's error.
        # On PostgreSQL both pass the check and the constraint's refusal is the error page.
        assert (
            'class="card card--narrow error-card"' in refused.text
            or "exists already" in refused.text
        )
    assert "UNIQUE" not in refused.text
    assert "uq_projects" not in refused.text
    assert await count(stack.settings, select(func.count()).where(Project.name == "Plan")) == 1


# ---- operator onboarding: slug, domain, connection name ---------------------------------


async def test_two_organizations_with_one_slug_in_the_console(stack: Stack) -> None:
    browser, csrf = operator(stack)
    url = stack.app_url + "/admin/organizations"

    def onboard(domain: str) -> Any:
        form = {"_csrf_token": csrf, "slug": "initrode", "display_name": "Initrode"}
        return lambda client: client.post(url, data={**form, "domains": domain})

    async with httpx.AsyncClient(cookies=browser.client.cookies, timeout=30) as client:
        responses = await race(
            stack,
            "organizations",
            onboard("one.initrode.example"),
            onboard("two.initrode.example"),
            client=client,
        )

    assert_no_500(responses)
    assert sorted(r.status_code for r in responses) == [303, 409]
    refused = next(r for r in responses if r.status_code == 409)
    assert "The slug &#39;initrode&#39; is taken." in refused.text  # the form, with its error
    assert 'name="slug"' in refused.text
    settings = stack.settings
    assert await count(settings, select(func.count()).where(Organization.slug == "initrode")) == 1
    # Nothing of the refused onboarding survives: only the winner's domain exists.
    domains = select(func.count()).where(OrganizationDomain.domain.like("%.initrode.example"))
    assert await count(settings, domains) == 1


async def test_two_organizations_with_one_slug_from_the_cli(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", stack.settings.database_url)
    monkeypatch.setenv("APP_ENV", "test")
    command = orgs.commands["create"]
    assert command.callback is not None
    outcomes: list[int] = []
    lock = threading.Lock()

    def create() -> None:
        try:
            command.callback(  # type: ignore[misc]
                slug="initrode",
                display_name="Initrode",
                default_role="member",
                jit=False,
                require_sso=False,
                domains=(),
            )
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        with lock:
            outcomes.append(code)

    def run(_: httpx.AsyncClient) -> Any:
        return asyncio.to_thread(create)

    async with httpx.AsyncClient() as client:
        await race(stack, "organizations", run, run, client=client)

    captured = capsys.readouterr()
    assert sorted(outcomes) == [0, 1], captured
    assert "error: The slug 'initrode' is taken." in captured.err
    assert "Traceback" not in captured.err
    query = select(func.count()).where(Organization.slug == "initrode")
    assert await count(stack.settings, query) == 1


async def test_one_domain_added_twice_to_one_organization_at_once(stack: Stack) -> None:
    """Was: one domain claimed by two organizations at once, one refused. A pending claim no
    longer blocks another organization (migration 0010), so the race that must leave one row
    is now one organization's two adds (test_domain_claims.py has the verification races)."""
    browser, csrf = operator(stack)

    def claim(slug: str) -> Any:
        url = stack.app_url + f"/admin/organizations/{slug}/domains"
        return lambda client: client.post(
            url, data={"_csrf_token": csrf, "domain": "newco.example"}
        )

    async with httpx.AsyncClient(cookies=browser.client.cookies, timeout=30) as client:
        responses = await race(
            stack, "organization_domains", claim("acme"), claim("acme"), client=client
        )

    assert_no_500(responses)
    assert sorted(r.status_code for r in responses) == [303, 409]
    refused = next(r for r in responses if r.status_code == 409)
    assert "newco.example is already claimed by this organization" in refused.text
    query = select(func.count()).where(OrganizationDomain.domain == "newco.example")
    assert await count(stack.settings, query) == 1


async def test_one_connection_name_added_twice_at_once(stack: Stack) -> None:
    browser, csrf = operator(stack)

    def add(slug: str) -> Any:
        url = stack.app_url + f"/admin/organizations/{slug}/connections"
        form = {"_csrf_token": csrf, "name": "shared-okta", "strategy": "okta"}
        return lambda client: client.post(url, data=form)

    async with httpx.AsyncClient(cookies=browser.client.cookies, timeout=30) as client:
        responses = await race(
            stack, "enterprise_connections", add("acme"), add("globex"), client=client
        )

    assert_no_500(responses)
    assert sorted(r.status_code for r in responses) == [303, 409]
    refused = next(r for r in responses if r.status_code == 409)
    assert "A connection named &#39;shared-okta&#39; exists already." in refused.text
    query = select(func.count()).where(EnterpriseConnection.auth0_connection_name == "shared-okta")
    assert await count(stack.settings, query) == 1


# ---- one person's first sign-in, from two tabs ------------------------------------------


def until_callback(browser: Browser, email: str) -> str:
    """Sign in at the IdP and stop at the redirect back to the app's callback."""
    page = browser.follow(browser.start_login(email))
    response = browser.submit(page, {"email": email, "password": DEMO_PASSWORD})
    callback = browser.stack.settings.callback_url
    for _ in range(10):
        assert response.status_code in (302, 303), response.text
        location = urljoin(str(response.url), response.headers["location"])
        if location.startswith(callback):
            return location
        response = browser.client.get(location)
    raise AssertionError("never redirected to the callback")


async def test_first_sign_in_from_two_tabs_at_once_succeeds_in_both(stack: Stack) -> None:
    # Acme provisions just in time for its verified domain; Nina has never signed in.
    email = "nina@acme.example"
    with stack.management() as mgmt:
        # What the outbox tells Auth0 for a just-in-time organization: let non-members in.
        let_in = mgmt.patch(
            f"/organizations/{ACME}/enabled_connections/con_AcmeSamlDemo0001",
            json={"assign_membership_on_login": True},
        )
        assert let_in.status_code == 200, let_in.text
    tabs = [stack.browser(), stack.browser()]
    callbacks = [until_callback(tab, email) for tab in tabs]

    # Each tab finishes on a client holding its own cookies (httpx deprecates cookies per
    # request), not on the client `race` shares.
    def finish(own: httpx.AsyncClient, url: str) -> Any:
        return lambda _shared: own.get(url)

    async with AsyncExitStack() as clients:
        own = [
            await clients.enter_async_context(
                httpx.AsyncClient(cookies=tab.client.cookies, timeout=30)
            )
            for tab in tabs
        ]
        responses = await race(
            stack,
            "users",
            *(finish(client, url) for client, url in zip(own, callbacks, strict=True)),
            client=own[0],
        )

    assert [r.status_code for r in responses] == [303, 303], [r.text for r in responses]
    assert all(r.headers["location"] == "/o/acme/" for r in responses)
    settings = stack.settings
    assert await count(settings, select(func.count()).where(User.email == email)) == 1
    memberships = (
        select(func.count())
        .select_from(Membership)
        .join(User, User.id == Membership.user_id)
        .where(User.email == email)
    )
    assert await count(settings, memberships) == 1


async def test_two_just_in_time_memberships_at_once_leave_one(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The membership step on its own (the user row exists already), in two transactions."""
    system = Actor.system()
    async with session_factory() as session:
        org = await OrganizationService(session=session).create_organization(
            slug="jit", display_name="JIT", actor=system, jit_provisioning=True
        )
        await OrganizationService(session=session).add_domain(
            organization_id=org.id, domain="jit.example", actor=system, verified=True
        )
        user = await UserService(session=session).upsert_by_sub(
            sub="samlp|jit|nina@jit.example", email="nina@jit.example"
        )
        await session.commit()

    async def join(session: AsyncSession) -> Membership:
        return await resolve_membership(
            session,
            user=await session.get_one(User, user.id),
            organization=await session.get_one(Organization, org.id),
            invitation_ticket=None,
            email_verified=True,
            actor=system,
        )

    async def join_and_commit() -> Membership:
        async with session_factory() as session:
            membership = await join(session)
            await session.commit()
            return membership

    async with session_factory() as first:
        joined = await join(first)
        second = asyncio.create_task(join_and_commit())
        await asyncio.sleep(0.5)
        assert not second.done(), "the second must wait for the first transaction"
        await first.commit()
    assert (await second).id == joined.id
    async with session_factory() as session:
        memberships = select(func.count()).where(Membership.user_id == user.id)
        assert await session.scalar(memberships) == 1


async def test_two_project_names_differing_only_in_case_at_once_leave_one(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """ "Roadmap" and "roadmap" are one name. The second create, started before the first
    commits, waits for it (PostgreSQL: the unique index on lower(name); SQLite: the write
    lock) and is refused like a name taken earlier."""
    system = Actor.system()
    async with session_factory() as session:
        org = await OrganizationService(session=session).create_organization(
            slug="case", display_name="Case", actor=system
        )
        await session.commit()

    async def create_and_commit(name: str) -> str:
        async with session_factory() as session:
            try:
                await ProjectService(session=session, caller=Caller.system(org)).create_project(
                    name
                )
                await session.commit()
            except Conflict:
                await session.rollback()
                return "refused"
            return "created"

    async with session_factory() as first:
        await ProjectService(session=first, caller=Caller.system(org)).create_project("Roadmap")
        second = asyncio.create_task(create_and_commit("roadmap"))
        await asyncio.sleep(0.5)
        assert not second.done(), "the second create must wait for the first transaction"
        await first.commit()
    assert await second == "refused"
    async with session_factory() as session:
        named = select(func.count()).where(
            Project.organization_id == org.id, func.lower(Project.name) == "roadmap"
        )
        assert await session.scalar(named) == 1


async def test_the_database_holds_one_project_name_per_organization_whatever_its_case(
    session: AsyncSession,
) -> None:
    """Whatever the service checks: the unique index itself, on both backends."""
    orgs = OrganizationService(session=session)
    acme = await orgs.create_organization(slug="acme", display_name="Acme", actor=Actor.system())
    globex = await orgs.create_organization(
        slug="globex", display_name="Globex", actor=Actor.system()
    )
    session.add_all(
        [
            Project(organization_id=acme.id, name="Roadmap"),
            Project(organization_id=globex.id, name="roadmap"),
        ]
    )
    await session.commit()
    for spelling in ("Roadmap", "roadmap", "ROADMAP"):
        async with session.begin_nested():
            session.add(Project(organization_id=acme.id, name=spelling))
            with pytest.raises(IntegrityError):
                await session.flush()
