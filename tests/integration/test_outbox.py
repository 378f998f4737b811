"""The outbox keeps the dev IdP (standing in for Auth0) in step with the app's database."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from saas.audit.services import Actor
from saas.auth0.jobs import AUTH0_SESSION_REVOKE, revoke_auth0_session_later
from saas.auth0.outbox import Claim, OutboxWorker
from saas.auth0.runtime import build_worker
from saas.db.config import create_sqlalchemy_config
from saas.db.models import Membership, Organization, OutboxJob, OutboxStatus, User
from saas.members.services import MembershipService
from saas.tenancy.permissions import Role
from tests.support.stack import Stack, add_fault, in_acme, running_stack, stack_settings
from tests.support.tokens import access_token_for

ACME = "org_AcmeDemo00000001"


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def auth0_roles(mgmt: httpx.Client, user_sub: str) -> list[str]:
    response = mgmt.get(f"/organizations/{ACME}/members/{user_sub}/roles")
    if response.status_code == 404:
        return []
    body = response.json()
    items = body["roles"] if isinstance(body, dict) else body
    return sorted(r["name"] for r in items)


def auth0_members(mgmt: httpx.Client) -> set[str]:
    body = mgmt.get(f"/organizations/{ACME}/members", params={"per_page": 100}).json()
    items = body["members"] if isinstance(body, dict) else body
    return {m["user_id"] for m in items}


pytestmark = [pytest.mark.stack(outbox_poll_seconds=0.2), pytest.mark.long_module]


def test_invitation_is_delivered_through_auth0_and_accepted(stack: Stack) -> None:
    alice = stack.browser()
    alice.login("alice@acme.example")
    token = access_token_for(alice, ACME)
    created = httpx.post(
        stack.app_url + "/api/v1/orgs/acme/invitations",
        json={"email": "carol@acme.example", "role": "admin"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert created.status_code == 201, created.text

    def carol_mail() -> dict[str, Any] | None:
        inbox = httpx.get(stack.idp_url + "/__dev/mailbox.json").json()
        messages = inbox["messages"] if isinstance(inbox, dict) else inbox
        return next((m for m in messages if m["to"] == "carol@acme.example"), None)

    mail = wait_for(carol_mail)
    link = mail["link"]
    assert link.startswith(stack.app_url + "/invitation?invitation=")

    carol = stack.browser()
    redirect = carol.get(link)
    assert redirect.status_code == 303, redirect.text
    assert "connection=acme-saml" in redirect.headers["location"]
    page = carol.sign_in_at_idp(redirect, "carol@acme.example")
    assert str(page.url) == stack.app_url + "/o/acme/", page.text
    assert "admin" in page.text
    # Used once: the same link does not work again.
    again = stack.browser().get(link)
    assert again.status_code == 403


def test_role_changes_and_removals_reach_auth0(stack: Stack) -> None:
    alice = stack.browser()
    alice.login("alice@acme.example")
    headers = {"Authorization": f"Bearer {access_token_for(alice, ACME)}"}
    members = httpx.get(stack.app_url + "/api/v1/orgs/acme/members", headers=headers).json()[
        "items"
    ]
    bob = next(m for m in members if m["email"] == "bob@acme.example")
    vera = next(m for m in members if m["email"] == "vera@acme.example")
    changed = httpx.patch(
        stack.app_url + f"/api/v1/orgs/acme/members/{bob['id']}",
        json={"role": "admin"},
        headers=headers,
    )
    assert changed.status_code == 200
    removed = httpx.delete(
        stack.app_url + f"/api/v1/orgs/acme/members/{vera['id']}", headers=headers
    )
    assert removed.status_code == 204
    with stack.management() as mgmt:
        wait_for(lambda: auth0_roles(mgmt, "samlp|acme-saml|bob@acme.example") == ["admin"])
        wait_for(lambda: "samlp|acme-saml|vera@acme.example" not in auth0_members(mgmt))


# ---- faults and concurrent workers --------------------------------------------------


class RecordingWorker(OutboxWorker):
    """Records which jobs this worker completed, to prove each completes exactly once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.completed: list[str] = []

    async def run(self, claim: Claim) -> str | None:
        status = await super().run(claim)
        if status == OutboxStatus.DONE.value:
            self.completed.append(str(claim.id))
        return status


async def churn(settings: Any, changes: int) -> dict[str, str]:
    """`changes` random role changes among acme's non-owner members; returns final roles."""
    config = create_sqlalchemy_config(settings)
    rng = random.Random(7)
    try:
        async with config.get_session() as session:
            org = (
                await session.execute(select(Organization).where(Organization.slug == "acme"))
            ).scalar_one()
            rows = (
                await session.execute(
                    select(Membership, User)
                    .join(User, User.id == Membership.user_id)
                    .where(Membership.organization_id == org.id, Membership.role != "owner")
                )
            ).all()
            service = MembershipService(session=session)
            final: dict[str, str] = {}
            for _ in range(changes):
                membership, user = rng.choice(rows)
                current = final.get(user.sub, membership.role)
                role = rng.choice(
                    [r for r in (Role.ADMIN, Role.MEMBER, Role.VIEWER) if r != current]
                )
                await service.change_role(
                    organization_id=org.id,
                    membership_id=membership.id,
                    role=role,
                    actor=Actor.system(),
                )
                final[user.sub] = role.value
            await session.commit()
            return final
    finally:
        await config.get_engine().dispose()


async def drain_with(workers: Sequence[OutboxWorker], settings: Any, deadline: float) -> None:
    config = create_sqlalchemy_config(settings)

    async def pending() -> int:
        async with config.get_session() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxJob)
                .where(OutboxJob.status == OutboxStatus.PENDING.value)
            )
            return int(count or 0)

    async def run(worker: OutboxWorker) -> None:
        while time.monotonic() < deadline:
            if not await worker.run_one():
                if await pending() == 0:
                    return
                await asyncio.sleep(0.1)

    try:
        await asyncio.gather(*(run(w) for w in workers))
    finally:
        for worker in workers:
            await worker.client.aclose()
        await config.get_engine().dispose()


async def job_statuses(settings: Any) -> dict[str, int]:
    config = create_sqlalchemy_config(settings)
    try:
        async with config.get_session() as session:
            rows = await session.execute(
                select(OutboxJob.status, func.count()).group_by(OutboxJob.status)
            )
            return {status: int(n) for status, n in rows.all()}
    finally:
        await config.get_engine().dispose()


BURST = 120


def test_burst_with_faults_converges_with_two_workers(database_url: str, tmp_path: Path) -> None:
    settings = stack_settings(
        database_url, tmp_path, outbox_worker_enabled=False, auth0_request_timeout_seconds=1.0
    )
    with running_stack(settings) as stack:
        # 120 changes: enough that both workers take jobs while every fault fires; 200 took
        # twice as long and proved nothing more.
        final = asyncio.run(churn(settings, BURST))
        faults = [
            {
                "method": "POST",
                "path": "/api/v2/organizations/*/members/*/roles",
                "response": "429",
                "count": 15,
                "retry_after": 1,
            },
            {
                "method": "GET",
                "path": "/api/v2/organizations/*/members/*/roles",
                "response": "500",
                "count": 9,
            },
            {
                "method": "POST",
                "path": "/api/v2/organizations/*/members",
                "response": "hang",
                "count": 3,
                "hang_seconds": 2,
            },
        ]
        for fault in faults:
            assert httpx.post(stack.idp_url + "/__dev/faults", json=fault).status_code == 201

        def worker() -> RecordingWorker:
            base = build_worker(settings, create_sqlalchemy_config(settings))
            return RecordingWorker(
                base.session_maker, base.client, base.handlers, max_attempts=20, poll_seconds=0.1
            )

        workers = [worker(), worker()]
        asyncio.run(drain_with(workers, settings, deadline=time.monotonic() + 120))

        fired = httpx.get(stack.idp_url + "/__dev/faults").json()["faults"]
        assert all(f["fired"] > 0 for f in fired), fired
        statuses = asyncio.run(job_statuses(settings))
        assert statuses.get(OutboxStatus.PENDING.value, 0) == 0, statuses
        assert statuses.get(OutboxStatus.FAILED.value, 0) == 0, statuses
        completed = workers[0].completed + workers[1].completed
        assert len(completed) == len(set(completed)), "a job completed twice"
        assert len(completed) == statuses[OutboxStatus.DONE.value] >= BURST
        assert all(w.completed for w in workers), "both workers should have taken jobs"
        with stack.management() as mgmt:
            for sub, role in final.items():
                assert auth0_roles(mgmt, sub) == [role], sub


# ---- revoking an Auth0 session (saas/account/services.py) ----------------------------------


def _revocations(stack: Stack) -> list[OutboxJob]:
    async def read(session: Any, _: Organization) -> list[OutboxJob]:
        rows = await session.scalars(
            select(OutboxJob).where(OutboxJob.kind == AUTH0_SESSION_REVOKE)
        )
        return list(rows)

    return in_acme(stack.settings, read)


def _end_the_other_session(laptop: Any) -> None:
    page = laptop.get("/account/sessions").text
    handles = re.findall(r'name="session" value="([0-9a-f]+)"', page)
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page)
    assert len(handles) == 2
    assert token
    ended = laptop.client.post(
        laptop.stack.app_url + "/account/sessions/end",
        data={"session": handles[1], "_csrf_token": token[1]},
    )
    assert ended.status_code == 303


def test_a_revocation_rides_out_auth0_errors_and_a_gone_session_counts_as_done(
    stack: Stack,
) -> None:
    laptop, phone = stack.browser(), stack.browser()
    laptop.login("bob@acme.example")
    phone.login("bob@acme.example")
    asyncio.run(
        add_fault(stack, method="POST", path="/api/v2/sessions/*/revoke", response="500", count=2)
    )
    _end_the_other_session(laptop)
    (job,) = wait_for(
        lambda: [j for j in _revocations(stack) if j.status == OutboxStatus.DONE.value]
    )
    assert job.attempts == 3  # two 500s, retried with backoff, then Auth0's 202
    # The phone's next click asks for the password at the IdP.
    page = phone.follow(phone.get("/o/acme/"))
    assert str(page.url).startswith(stack.idp_url + "/u/login")

    # Revoked once more (the phone's session is gone at the IdP): Auth0's 404 is what was
    # wanted, so the job is done, not failed.
    async def again(session: Any, _: Organization) -> None:
        user = await session.scalar(select(User).where(User.email == "bob@acme.example"))
        revoke_auth0_session_later(session, user.id, job.payload["sid"], device="Safari")
        await session.commit()

    in_acme(stack.settings, again)
    wait_for(
        lambda: (
            all(j.status == OutboxStatus.DONE.value for j in _revocations(stack))
            and len(_revocations(stack)) == 2
        )
    )


@pytest.mark.stack(outbox_poll_seconds=30.0)
def test_a_committed_revocation_wakes_the_worker(stack: Stack) -> None:
    """The in-process worker runs a job as soon as the request that added it commits, not at
    its next poll: a browser signed out from elsewhere must not sign in again meanwhile."""
    laptop, phone = stack.browser(), stack.browser()
    laptop.login("bob@acme.example")
    phone.login("bob@acme.example")
    started = time.monotonic()
    _end_the_other_session(laptop)
    wait_for(
        lambda: [j for j in _revocations(stack) if j.status == OutboxStatus.DONE.value],
        timeout=5.0,
        interval=0.05,
    )
    assert time.monotonic() - started < 5.0
