"""Slow clients and slow URLs hold no database transaction, and so no pooled connection.

Route guards read the database before the request body arrives; a body may take as long as
its client likes. If the guard's transaction stayed open while the handler waits, twenty held
bodies would leave twenty PostgreSQL connections idle in transaction (the whole pool) and an
unrelated request would time out. The same holds while the SSO forms fetch the OIDC discovery
document at a URL the tenant typed: no transaction may be open during that call (on SQLite one
that has written holds the database's only write lock).

Real servers on real sockets, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx
import pytest
from litestar import Litestar, get
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from saas.db.config import create_sqlalchemy_config
from saas.db.models import EnterpriseConnection, Organization, Project
from tests.integration.test_stale_authority import ApiClient, DashboardUser, hold
from tests.support.held_request import HeldRequest
from tests.support.servers import serve
from tests.support.stack import Browser, Stack

HELD = 20  # the app's whole PostgreSQL pool: pool_size 10 + max_overflow 10
_FORM_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


# No in-process outbox worker: its short transactions would blur the count below.
pytestmark = pytest.mark.stack(outbox_worker_enabled=False)


def open_transactions(stack: Stack) -> int:
    """Transactions of the app that sit open while it waits for something.

    PostgreSQL: its connections idle in transaction for a while (not between two statements).
    SQLite: whether another writer is kept out (a second writer waits at most 1 s here)."""
    settings = stack.settings
    if not settings.is_postgres:
        path = make_url(settings.database_url).database
        assert path
        connection = sqlite3.connect(path, timeout=1.0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            return 1
        finally:
            connection.close()
        return 0

    async def count() -> int:
        config = create_sqlalchemy_config(settings)
        try:
            async with config.get_session() as session:
                return int(
                    await session.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                            " AND state LIKE 'idle in transaction%'"
                            " AND state_change < now() - interval '200 milliseconds'"
                        )
                    )
                    or 0
                )
        finally:
            await config.get_engine().dispose()

    return asyncio.run(count())


def rows(stack: Stack, statement: Any) -> int:
    async def run() -> int:
        config = create_sqlalchemy_config(stack.settings)
        try:
            async with config.get_session() as session:
                return int(await session.scalar(statement) or 0)
        finally:
            await config.get_engine().dispose()

    return asyncio.run(run())


def test_held_request_bodies_hold_no_database_connection(stack: Stack) -> None:
    """Twenty writes wait for their bodies (API and dashboard through the tenant guard, the
    operator console through its own): none holds a transaction, an unrelated request is
    served at once, and each write then completes with what its guard read."""
    api = ApiClient(stack, "bob@acme.example")  # a member: projects:write
    dashboard = DashboardUser(stack, "bob@acme.example")
    console = DashboardUser(stack, "olivia@ops.example")  # the platform operator
    requests: list[HeldRequest] = []
    for i in range(HELD):
        if i % 5 == 4:
            requests.append(
                console.held(
                    "/admin/organizations",
                    {"slug": f"held-{i}", "display_name": f"Held {i}"},
                    htmx=False,
                )
            )
        elif i % 2:
            requests.append(dashboard.held("/o/acme/projects/", {"name": f"dash {i}"}, htmx=True))
        else:
            requests.append(api.held("POST", "/api/v1/orgs/acme/projects", {"name": f"api {i}"}))
    held = [hold(request) for request in requests]
    try:
        time.sleep(0.5)
        idle = open_transactions(stack)
        print(f"while {HELD} bodies are held: {idle} open transaction(s)")
        started = time.monotonic()
        try:
            unrelated = api.call("GET", "/api/v1/orgs/acme/projects")
        except httpx.TimeoutException:
            pytest.fail(f"an unrelated request got no answer in {time.monotonic() - started:.0f} s")
        took = time.monotonic() - started
        print(f"an unrelated GET meanwhile: {unrelated.status_code} in {took:.2f} s")
        assert idle == 0, f"{idle} connection(s) idle in transaction while bodies are held"
        assert unrelated.status_code == 200, unrelated.text
        assert took < 2.0, f"an unrelated request waited {took:.1f} s for a connection"
    finally:
        responses = [request.finish() for request in held]
    for request, response in zip(requests, responses, strict=True):
        expected = 303 if "/admin/" in request.url else 200 if "/o/" in request.url else 201
        assert response.status_code == expected, (request.url, response.text[:300])
    assert rows(stack, select(func.count()).select_from(Project)) >= HELD - HELD // 5
    held_orgs = select(func.count()).where(Organization.slug.like("held-%"))
    assert rows(stack, held_orgs) == HELD // 5


class SlowDiscovery:
    """An OIDC discovery document at a URL a tenant could type, that answers when told."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.answer = threading.Event()
        self.url = ""

    def app(self) -> Litestar:
        @get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, str]:
            self.asked.set()
            await anyio.to_thread.run_sync(self.answer.wait, 30)
            return {
                "issuer": self.url,
                "authorization_endpoint": self.url + "/authorize",
                "token_endpoint": self.url + "/oauth/token",
                "jwks_uri": self.url + "/.well-known/jwks.json",
            }

        return Litestar([discovery])

    def while_fetching(self, stack: Stack, submit: Any) -> tuple[httpx.Response, int]:
        """Submit a form that makes the app fetch this document; while the app waits for it,
        count the app's open transactions."""
        self.asked.clear()
        self.answer.clear()
        with ThreadPoolExecutor(1) as pool:
            sent = pool.submit(submit)
            try:
                assert self.asked.wait(15), "the app did not fetch the discovery document"
                time.sleep(0.3)
                idle = open_transactions(stack)
            finally:
                self.answer.set()
            return sent.result(timeout=30), idle


@pytest.fixture
def slow_discovery() -> Iterator[SlowDiscovery]:
    discovery = SlowDiscovery()
    with serve(discovery.app()) as url:
        discovery.url = url
        yield discovery


def csrf_of(browser: Browser, path: str) -> str:
    page = browser.get(path)
    found = _FORM_CSRF.search(page.text)
    assert found, page.text
    return found[1]


def test_sso_discovery_fetch_runs_with_no_transaction_open(
    stack: Stack, slow_discovery: SlowDiscovery
) -> None:
    discovery_url = slow_discovery.url + "/.well-known/openid-configuration"
    browser = stack.browser()
    browser.login("olivia@ops.example")
    assert browser.follow(browser.get("/o/initech/login?silent=true")).status_code == 200

    # The tenant's own SSO settings: the guard has read, the form's fetch is slow.
    token = csrf_of(browser, "/o/initech/settings/sso/")
    saved, idle = slow_discovery.while_fetching(
        stack,
        lambda: browser.client.post(
            stack.app_url + "/o/initech/settings/sso/",
            data={
                "_csrf_token": token,
                "strategy": "oidc",
                "discovery_url": discovery_url,
                "client_id": "initech-client",
            },
            timeout=30,
        ),
    )
    print(f"SSO settings: {idle} open transaction(s) during the discovery fetch")
    assert saved.status_code == 303, saved.text[:500]
    assert idle == 0, "a transaction was open while the SSO form fetched the discovery URL"

    # The operator console's onboarding: an organization and its connection in one form.
    token = csrf_of(browser, "/admin/organizations/new")
    created, idle = slow_discovery.while_fetching(
        stack,
        lambda: browser.client.post(
            stack.app_url + "/admin/organizations",
            data={
                "_csrf_token": token,
                "slug": "slowco",
                "display_name": "Slow Co",
                "domains": "slowco.example",
                "sso_strategy": "oidc",
                "discovery_url": discovery_url,
                "client_id": "slowco-client",
            },
            timeout=30,
        ),
    )
    print(f"operator onboarding: {idle} open transaction(s) during the discovery fetch")
    assert created.status_code == 303, created.text[:500]
    assert idle == 0, "a transaction was open while onboarding fetched the discovery URL"
    slowco_connections = (
        select(func.count())
        .select_from(EnterpriseConnection)
        .join(Organization, Organization.id == EnterpriseConnection.organization_id)
        .where(Organization.slug == "slowco", EnterpriseConnection.strategy == "oidc")
    )
    assert rows(stack, slowco_connections) == 1
