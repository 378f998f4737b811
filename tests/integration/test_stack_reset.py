"""The `stack` fixture hands one pair of running servers to many tests: what one test leaves
behind, the next one on the same servers must not see.

The first test writes everything a test can leave behind: rows (a project, a role change, an
accepted invitation and so a new member), sessions at the app and at the dev IdP, mail in the
dev IdP's mailbox, sign-in counts up to the limit, an injected fault and an outbox job that keeps
failing. The second, on the same servers (the pool started none in between), finds the state
the servers started in. Both run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from advanced_alchemy.base import metadata_registry
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from saas.db.config import create_sqlalchemy_config
from saas.db.models import Invitation, OutboxJob, OutboxStatus, Project, User
from saas.devidp.models import DevIdpBase
from saas.login.sessions import SESSION_STORE
from tests.support.stack import Stack, StackPool
from tests.support.tokens import access_token_for, pkce_pair

ACME = "org_AcmeDemo00000001"
LIMIT = 12  # sign-in requests per minute and client address
CAROL = "carol@acme.example"
LEFT_PROJECT = "Left behind"

# Under pytest-xdist, `make test`'s --dist loadfile keeps both tests on one worker, in order.
pytestmark = pytest.mark.stack(login_rate_limit_per_minute=LIMIT, outbox_poll_seconds=0.2)

T = TypeVar("T")


@dataclass
class Left:
    """What the first test left behind on one backend, for the second to look for."""

    started: int  # the pool's count of started stacks: the second test must see the same
    app_rows: dict[str, int]  # per table, as the servers started
    idp_rows: dict[str, int]
    cookies: httpx.Cookies  # alice's, at the app and at the dev IdP


LEFT: dict[str, Left] = {}


def wait_for(predicate: Callable[[], T | None], timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := predicate()) is not None and value is not False:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def app_scalar(stack: Stack, statement: Any) -> Any:
    async def run() -> Any:
        config = create_sqlalchemy_config(stack.settings)
        try:
            async with config.get_session() as session:
                return await session.scalar(statement)
        finally:
            await config.get_engine().dispose()

    return asyncio.run(run())


def app_row_counts(stack: Stack) -> dict[str, int]:
    return {
        table.name: int(app_scalar(stack, select(func.count()).select_from(table)))
        for table in metadata_registry.get(None).sorted_tables
    }


def idp_row_counts(stack: Stack) -> dict[str, int]:
    # The dev IdP's database is SQLite; read as another process would.
    url = make_url(stack.settings.devidp_database_url).set(drivername="sqlite")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: int(connection.scalar(select(func.count()).select_from(table)) or 0)
                for table in DevIdpBase.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def mailbox(stack: Stack) -> list[dict[str, Any]]:
    return list(httpx.get(stack.idp_url + "/__dev/mailbox.json").json()["messages"])


def faults(stack: Stack) -> list[dict[str, Any]]:
    return list(httpx.get(stack.idp_url + "/__dev/faults").json()["faults"])


def session_files(stack: Stack) -> list[str]:
    directory = stack.settings.state_dir / "stores" / SESSION_STORE
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def sign_in_statuses(stack: Stack, count: int) -> list[int]:
    with httpx.Client(base_url=stack.app_url, timeout=10) as anonymous:
        return [anonymous.get("/login").status_code for _ in range(count)]


def test_a_leaves_rows_sessions_mail_counts_faults_and_jobs_behind(
    stack: Stack, stack_pool: StackPool, backend: str
) -> None:
    app_rows, idp_rows = app_row_counts(stack), idp_row_counts(stack)
    assert mailbox(stack) == []
    assert faults(stack) == []

    alice = stack.browser()
    alice.login("alice@acme.example")
    headers = {"Authorization": f"Bearer {access_token_for(alice, ACME)}"}
    api = stack.app_url + "/api/v1/orgs/acme"
    project = httpx.post(api + "/projects/", json={"name": LEFT_PROJECT}, headers=headers)
    assert project.status_code == 201, project.text
    invited = httpx.post(
        api + "/invitations", json={"email": CAROL, "role": "member"}, headers=headers
    )
    assert invited.status_code == 201, invited.text
    mail = wait_for(lambda: next((m for m in mailbox(stack) if m["to"] == CAROL), None))
    carol = stack.browser()
    page = carol.sign_in_at_idp(carol.get(mail["link"]), CAROL)
    assert str(page.url) == stack.app_url + "/o/acme/", page.text
    assert app_scalar(stack, select(func.count()).where(User.email == CAROL)) == 1

    # A job the worker keeps retrying: every role change at "Auth0" fails.
    fault = {
        "method": "POST",
        "path": "/api/v2/organizations/*/members/*/roles",
        "response": "500",
        "count": 1000,
    }
    assert httpx.post(stack.idp_url + "/__dev/faults", json=fault).status_code == 201
    members = httpx.get(api + "/members", headers=headers).json()["items"]
    bob = next(m for m in members if m["email"] == "bob@acme.example")
    changed = httpx.patch(api + f"/members/{bob['id']}", json={"role": "admin"}, headers=headers)
    assert changed.status_code == 200, changed.text
    wait_for(lambda: faults(stack)[0]["fired"] > 0)
    pending = select(func.count()).where(OutboxJob.status == OutboxStatus.PENDING.value)
    assert app_scalar(stack, pending) >= 1

    statuses = sign_in_statuses(stack, LIMIT)
    assert statuses[-1] == 429, statuses  # the address's sign-in count is used up

    assert app_row_counts(stack) != app_rows
    assert idp_row_counts(stack) != idp_rows
    assert session_files(stack)
    LEFT[backend] = Left(
        started=stack_pool.started,
        app_rows=app_rows,
        idp_rows=idp_rows,
        cookies=httpx.Cookies(alice.client.cookies),
    )
    alice.close()
    carol.close()


def test_b_finds_the_servers_as_they_started(
    stack: Stack, stack_pool: StackPool, backend: str
) -> None:
    left = LEFT.get(backend)
    assert left is not None, "runs after test_a_leaves_... in the same session"
    assert stack_pool.started == left.started, "not the same servers: nothing was reset"

    # Counts first: every sign-in request of the address is let through again.
    assert sign_in_statuses(stack, LIMIT) == [200] * LIMIT
    assert app_row_counts(stack) == left.app_rows
    assert idp_row_counts(stack) == left.idp_rows
    assert app_scalar(stack, select(func.count()).where(Project.name == LEFT_PROJECT)) == 0
    assert app_scalar(stack, select(func.count()).where(User.email == CAROL)) == 0
    assert app_scalar(stack, select(func.count()).where(Invitation.email == CAROL)) == 0
    assert (
        app_scalar(stack, select(func.count()).select_from(OutboxJob))
        == left.app_rows[OutboxJob.__tablename__]
    )
    assert mailbox(stack) == []
    assert faults(stack) == []
    assert session_files(stack) == []

    # Alice's sessions are gone, at the app and at the dev IdP.
    alice = stack.browser()
    alice.client.cookies = left.cookies
    page = alice.get("/o/acme/")
    assert page.status_code == 303, page.text
    assert page.headers["location"].startswith("/o/acme/login")
    settings = stack.settings
    _, challenge = pkce_pair()
    silent = alice.client.get(
        stack.idp_url + "/authorize",
        params={
            "response_type": "code",
            "client_id": settings.auth0_client_id,
            "redirect_uri": settings.callback_url,
            "scope": "openid",
            "organization": ACME,
            "state": "s",
            "nonce": "n",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "prompt": "none",
        },
    )
    assert silent.status_code in (302, 303), silent.text
    assert "error=login_required" in silent.headers["location"]
    alice.close()
