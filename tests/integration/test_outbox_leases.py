"""The outbox worker holds no database transaction while it calls Auth0, and its leases let a
job survive a worker that stops, without two workers ever running one job at once.

The dev IdP stands in for Auth0; its fault injection (`POST /__dev/faults`) makes a Management
API call hang, so the tests look at the database while a call is in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select, text, update

from saas.audit.actions import AuditAction
from saas.audit.services import Actor, AuditService
from saas.auth0.jobs import sync_member_later
from saas.auth0.management import ManagementClient
from saas.auth0.outbox import Claim, OutboxWorker
from saas.auth0.runtime import build_worker
from saas.auth0.sync import HANDLERS
from saas.config import Settings
from saas.db.config import create_sqlalchemy_config
from saas.db.models import Membership, Organization, OutboxJob, OutboxStatus, User
from tests.support.stack import Stack, running_stack, stack_settings

HANG_SECONDS = 2.0
ADD_MEMBER = "/api/v2/organizations/*/members"


@pytest.fixture
def stack(database_url: str, tmp_path: Path) -> Iterator[Stack]:
    # The tests drive workers themselves; the app's own would take their jobs.
    settings = stack_settings(database_url, tmp_path, outbox_worker_enabled=False)
    with running_stack(settings) as running:
        yield running


@pytest.fixture
async def db(stack: Stack) -> AsyncIterator[Any]:
    config = create_sqlalchemy_config(stack.settings)
    try:
        yield config
    finally:
        await config.get_engine().dispose()


async def acme_members(db: Any, count: int) -> list[tuple[UUID, UUID]]:
    """(organization id, user id) of acme's first members, and the seed's own jobs settled:
    the dev IdP's seed already holds what they would push."""
    async with db.get_session() as session:
        await session.execute(update(OutboxJob).values(status=OutboxStatus.DONE.value))
        rows = await session.execute(
            select(Organization.id, User.id)
            .join(Membership, Membership.organization_id == Organization.id)
            .join(User, User.id == Membership.user_id)
            .where(Organization.slug == "acme")
            .order_by(User.email)
            .limit(count)
        )
        members = [(org_id, user_id) for org_id, user_id in rows.all()]
        await session.commit()
    return members


async def enqueue_member_syncs(db: Any, members: list[tuple[UUID, UUID]]) -> list[UUID]:
    async with db.get_session() as session:
        before = set((await session.execute(select(OutboxJob.id))).scalars())
        for org_id, user_id in members:
            sync_member_later(session, org_id, user_id)
        await session.commit()
        after = set((await session.execute(select(OutboxJob.id))).scalars())
    return sorted(after - before)


async def job(db: Any, job_id: UUID) -> OutboxJob:
    async with db.get_session() as session:
        found = await session.get(OutboxJob, job_id)
        assert found is not None
        return found


async def add_fault(stack: Stack, **fault: Any) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(stack.idp_url + "/__dev/faults", json=fault)
        assert response.status_code == 201, response.text


async def faults_left(stack: Stack) -> int:
    async with httpx.AsyncClient() as client:
        return len((await client.get(stack.idp_url + "/__dev/faults")).json()["faults"])


def worker(settings: Settings, db: Any, **options: Any) -> OutboxWorker:
    return OutboxWorker(db.create_session_maker(), ManagementClient(settings), HANDLERS, **options)


# ---- no transaction while Auth0 is called -------------------------------------------


async def test_an_auth0_call_in_flight_holds_no_transaction(stack: Stack, db: Any) -> None:
    settings = stack.settings
    [job_id] = await enqueue_member_syncs(db, await acme_members(db, 1))
    await add_fault(
        stack, method="POST", path=ADD_MEMBER, response="hang", count=1, hang_seconds=HANG_SECONDS
    )
    running = build_worker(settings, db)
    try:
        in_flight = asyncio.create_task(running.run_one())
        # The fault is used up (and listed no more) once the hanging call has begun.
        async with asyncio.timeout(10):
            while await faults_left(stack):  # noqa: ASYNC110  (polls the dev IdP)
                await asyncio.sleep(0.02)

        if settings.is_postgres:
            async with db.get_session() as session:
                idle = await session.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                    )
                )
            assert idle == 0, f"{idle} connection(s) idle in transaction during the Auth0 call"

        # An unrelated write, while the call hangs: it must not wait for the call.
        started = time.monotonic()
        async with db.get_session() as session:
            await AuditService(session=session).record(
                AuditAction.PROJECT_CREATED, actor=Actor.system(), organization_id=None
            )
            await session.commit()
        waited = time.monotonic() - started
        print(f"unrelated write during a {HANG_SECONDS:.0f} s Auth0 call: {waited:.3f} s")
        assert waited < 0.5, f"an unrelated write waited {waited:.2f} s for the Auth0 call"
        assert not in_flight.done(), "the write must be measured while the call is in flight"

        assert await in_flight is True
    finally:
        await running.client.aclose()
    assert (await job(db, job_id)).status == OutboxStatus.DONE.value


# ---- leases -----------------------------------------------------------------------------


async def test_a_job_whose_worker_stopped_runs_again_after_its_lease(stack: Stack, db: Any) -> None:
    settings = stack.settings
    [job_id] = await enqueue_member_syncs(db, await acme_members(db, 1))
    stopped, other = (
        worker(settings, db, lease_seconds=1.5),
        worker(settings, db, lease_seconds=1.5),
    )
    try:
        claim = await stopped.claim()  # ... and the worker "dies": it never records a result
        assert claim is not None
        assert claim.id == job_id
        assert claim.attempts == 1
        assert await other.run_one() is False, "a leased job is nobody else's"

        await asyncio.sleep(1.7)
        assert await other.run_one() is True
        done = await job(db, job_id)
        assert done.status == OutboxStatus.DONE.value
        assert done.attempts == 2
        assert done.lease_token is None
        assert done.leased_until is None

        # Should the stopped worker come back, its lease is gone: it records nothing on the
        # job, and asks for one more run instead (its calls may have come after the other's).
        assert await stopped.run(claim) is None
        assert (await job(db, job_id)).attempts == 2
        async with db.get_session() as session:
            pending = await session.scalar(
                select(OutboxJob.id).where(OutboxJob.status == OutboxStatus.PENDING.value)
            )
        assert pending is not None
        assert pending != job_id
    finally:
        await stopped.client.aclose()
        await other.client.aclose()


class TimedWorker(OutboxWorker):
    """Records when it ran which job, to show no two runs of one job overlap."""

    def __init__(
        self, runs: dict[UUID, list[tuple[float, float, str]]], name: str, *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.runs = runs
        self.name = name

    async def run(self, claim: Claim) -> str | None:
        started = time.monotonic()
        try:
            return await super().run(claim)
        finally:
            self.runs[claim.id].append((started, time.monotonic(), self.name))


async def test_two_workers_never_run_one_job_at_once(stack: Stack, db: Any) -> None:
    settings = stack.settings
    job_ids = await enqueue_member_syncs(db, await acme_members(db, 4))
    # Calls that hang longer than a job may run: those runs are cut short at 80% of the
    # 1.5 s lease, recorded as failed attempts while the lease still holds, and retried.
    await add_fault(
        stack, method="POST", path=ADD_MEMBER, response="hang", count=3, hang_seconds=HANG_SECONDS
    )
    runs: dict[UUID, list[tuple[float, float, str]]] = defaultdict(list)
    options = {"lease_seconds": 1.5, "max_attempts": 20}
    workers = [
        TimedWorker(
            runs, name, db.create_session_maker(), ManagementClient(settings), HANDLERS, **options
        )
        for name in ("a", "b")
    ]

    async def drain(each: OutboxWorker) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not await each.run_one():
                async with db.get_session() as session:
                    left = await session.scalar(
                        select(OutboxJob.id).where(OutboxJob.status == OutboxStatus.PENDING.value)
                    )
                if left is None:
                    return
                await asyncio.sleep(0.05)

    try:
        await asyncio.gather(*(drain(each) for each in workers))
    finally:
        for each in workers:
            await each.client.aclose()

    for job_id, intervals in runs.items():
        intervals.sort()
        for (_, end, _), (start, _, _) in itertools.pairwise(intervals):
            assert end <= start, f"job {job_id} ran twice at once: {intervals}"
    finals = [await job(db, job_id) for job_id in job_ids]
    assert all(j.status == OutboxStatus.DONE.value for j in finals), [j.status for j in finals]
    assert any(j.attempts > 1 for j in finals), "some run should have been cut short"
    assert {name for intervals in runs.values() for *_, name in intervals} == {"a", "b"}
