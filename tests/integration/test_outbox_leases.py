"""The outbox worker holds no database transaction while it calls Auth0, and its leases let a
job survive a worker that stops, without two workers ever running one job at once. What Auth0
created during a call is recorded even if the rows changed meanwhile, so the next run can undo
it there.

The dev IdP stands in for Auth0; its fault injection (`POST /__dev/faults`) makes a Management
API call hang, so the tests look at the database while a call is in flight.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator
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
from saas.db.models import (
    EnterpriseConnection,
    Invitation,
    Membership,
    Organization,
    OutboxJob,
    OutboxStatus,
    User,
)
from saas.invitations.services import InvitationService
from saas.sso.services import SsoService
from saas.sso.validation import ValidatedConnection
from saas.tenancy.caller import Caller
from tests.support.stack import Stack, add_fault

HANG_SECONDS = 2.0
ADD_MEMBER = "/api/v2/organizations/*/members"
CREATE_INVITATION = "/api/v2/organizations/*/invitations"
CREATE_CONNECTION = "/api/v2/connections"


# The tests drive workers themselves; the app's own would take their jobs.
pytestmark = [pytest.mark.stack(outbox_worker_enabled=False), pytest.mark.long_module]


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
    # Only the stopped worker's lease must run out here; the other's run holds a lease long
    # enough that a slow call to the dev IdP on a loaded machine finishes inside it.
    stopped, other = (
        worker(settings, db, lease_seconds=1.5),
        worker(settings, db, lease_seconds=30),
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


# ---- rows that change while Auth0 creates something -------------------------------------


async def no_jobs_pending(db: Any) -> None:
    async with db.get_session() as session:
        await session.execute(update(OutboxJob).values(status=OutboxStatus.DONE.value))
        await session.commit()


async def organization(db: Any, slug: str) -> Organization:
    async with db.get_session() as session:
        return (
            await session.execute(select(Organization).where(Organization.slug == slug))
        ).scalar_one()


async def while_auth0_creates(
    stack: Stack, db: Any, path: str, change: Any
) -> tuple[OutboxWorker, list[OutboxJob]]:
    """Run the one pending job with its create call at `path` hanging; make `change` (in its
    own committed transaction) while it hangs; then drain the queue. Returns the worker and
    the jobs left undone."""
    await add_fault(
        stack, method="POST", path=path, response="hang", count=1, hang_seconds=HANG_SECONDS
    )
    running = worker(stack.settings, db)
    in_flight = asyncio.create_task(running.run_one())
    async with asyncio.timeout(10):
        while await faults_left(stack):  # noqa: ASYNC110  (polls the dev IdP)
            await asyncio.sleep(0.02)
    async with db.get_session() as session:
        await change(session)
        await session.commit()
    assert not in_flight.done(), "the change must be made while the create call hangs"
    assert await in_flight is True
    await running.drain()
    async with db.get_session() as session:
        left = (
            await session.execute(
                select(OutboxJob).where(OutboxJob.status != OutboxStatus.DONE.value)
            )
        ).scalars()
        return running, list(left)


async def test_an_invitation_revoked_while_auth0_creates_it_is_deleted_there(
    stack: Stack, db: Any
) -> None:
    await no_jobs_pending(db)
    acme = await organization(db, "acme")
    async with db.get_session() as session:
        invitation, _ = await InvitationService(session=session).invite(
            organization_id=acme.id,
            email="revoked-in-flight@example.org",
            role="member",
            actor=Actor.system(),
            authority=None,
            ttl=datetime.timedelta(days=7),
        )
        await session.commit()

    async def revoke(session: Any) -> None:
        await InvitationService(session=session).revoke(
            organization_id=acme.id, invitation_id=invitation.id, actor=Actor.system()
        )

    running, left = await while_auth0_creates(stack, db, CREATE_INVITATION, revoke)
    try:
        assert acme.auth0_org_id
        at_auth0 = await running.client.find_invitation(acme.auth0_org_id, str(invitation.id))
    finally:
        await running.client.aclose()
    async with db.get_session() as session:
        row = await session.get(Invitation, invitation.id)
    assert row is not None
    print(f"revoked during create: at Auth0 after drain {at_auth0 and at_auth0['id']}")
    assert left == []
    assert row.revoked_at is not None
    assert row.auth0_invitation_id is not None, "what Auth0 created was not recorded"
    assert at_auth0 is None, "the revoked invitation is still open at Auth0"


async def test_a_connection_deleted_while_auth0_creates_it_is_taken_off_the_organization(
    stack: Stack, db: Any
) -> None:
    await no_jobs_pending(db)
    initech = await organization(db, "initech")
    oidc = ValidatedConnection(
        strategy="oidc",
        options={
            "discovery_url": stack.idp_url + "/.well-known/openid-configuration",
            "issuer": stack.idp_url + "/",
            "client_id": "initech-client",
            "type": "back_channel",
        },
        summary={},
    )
    async with db.get_session() as session:
        connection = await SsoService(session, Caller.system(initech), stack.settings).save(
            oidc, display_name="Initech SSO", assign_membership_on_login=False
        )
        name = connection.auth0_connection_name
        await session.commit()

    async def delete(session: Any) -> None:
        await SsoService(session, Caller.system(initech), stack.settings).delete()

    running, left = await while_auth0_creates(stack, db, CREATE_CONNECTION, delete)
    await running.client.aclose()
    async with db.get_session() as session:
        assert await session.get(EnterpriseConnection, connection.id) is None
    with stack.management() as mgmt:
        found = mgmt.get("/connections", params={"name": name}).json()
        created = found["connections"] if isinstance(found, dict) else found
        enabled = mgmt.get(f"/organizations/{initech.auth0_org_id}/enabled_connections").json()
    enabled_ids = {
        e["connection_id"]
        for e in (enabled if isinstance(enabled, list) else enabled["enabled_connections"])
    }
    assert [c["name"] for c in created] == [name], "the create call should have gone through"
    print(f"deleted during create: still enabled at Auth0: {created[0]['id'] in enabled_ids}")
    assert left == []
    assert created[0]["id"] not in enabled_ids, "the deleted connection is still enabled"


async def test_what_a_stopped_worker_created_at_auth0_is_found_there_and_undone(
    stack: Stack, db: Any
) -> None:
    """A worker that stops between Auth0's answer and its commit records no id. Revoking the
    invitation, or deleting the connection, must still undo them at Auth0: by lookup."""
    await no_jobs_pending(db)
    acme, initech = await organization(db, "acme"), await organization(db, "initech")
    async with db.get_session() as session:
        invitation, _ = await InvitationService(session=session).invite(
            organization_id=acme.id,
            email="never-recorded@example.org",
            role="member",
            actor=Actor.system(),
            authority=None,
            ttl=datetime.timedelta(days=7),
        )
        connection = await SsoService(session, Caller.system(initech), stack.settings).save(
            ValidatedConnection(
                strategy="oidc",
                options={"discovery_url": stack.idp_url + "/.well-known/openid-configuration"},
            ),
            display_name="Initech SSO",
            assign_membership_on_login=False,
        )
        await session.commit()
    client = ManagementClient(stack.settings)
    try:
        # The jobs' calls, then a stop: nothing is recorded, the jobs stay as they were.
        for kind, payload in (
            ("invitation.sync", {"invitation_id": str(invitation.id)}),
            ("connection.sync", {"connection_id": str(connection.id)}),
        ):
            async with db.get_session() as session:
                state = await HANDLERS[kind].read(session, payload)
            await HANDLERS[kind].push(client, state)
        async with db.get_session() as session:
            await session.execute(update(OutboxJob).values(status=OutboxStatus.DONE.value))
            await InvitationService(session=session).revoke(
                organization_id=acme.id, invitation_id=invitation.id, actor=Actor.system()
            )
            await SsoService(session, Caller.system(initech), stack.settings).delete()
            await session.commit()
        assert acme.auth0_org_id
        assert initech.auth0_org_id
        assert await client.find_invitation(acme.auth0_org_id, str(invitation.id)) is not None
        draining = worker(stack.settings, db)
        await draining.drain()
        await draining.client.aclose()
        invitation_left = await client.find_invitation(acme.auth0_org_id, str(invitation.id))
        at_auth0 = await client.connection_by_name(connection.auth0_connection_name)
        enabled = await client.call(
            "GET", f"/organizations/{initech.auth0_org_id}/enabled_connections"
        )
    finally:
        await client.aclose()
    enabled_ids = {
        e["connection_id"]
        for e in (enabled if isinstance(enabled, list) else enabled["enabled_connections"])
    }
    assert at_auth0 is not None
    print(
        "never recorded, after drain: invitation open at Auth0:",
        invitation_left is not None,
        "connection enabled:",
        at_auth0["id"] in enabled_ids,
    )
    assert invitation_left is None, "the revoked invitation is still open at Auth0"
    assert at_auth0["id"] not in enabled_ids, "the deleted connection is still enabled"
