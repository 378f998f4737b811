"""The outbox: Auth0 changes written in the same transaction as the app's change, drained by a
worker with retries, so nothing is lost when Auth0 is slow or down.

Jobs are *state sync* jobs ("make Auth0's view of this membership match ours"), read the
database when they run, and are idempotent: retries, duplicates and reordering all converge.

No database transaction is open while Auth0 is called (on SQLite one would hold the database's
only write lock for the whole call; on PostgreSQL a pooled connection would sit idle in
transaction). A job runs in four steps:

1. claim: one short transaction leases the next due job (`lease_token`, `leased_until`,
   `attempts + 1`). On PostgreSQL `FOR UPDATE SKIP LOCKED` lets several workers take different
   jobs at once; on SQLite the UPDATE itself takes the write lock, so claims are serialized.
2. read: a short read-only transaction copies what the call needs into plain values.
3. push: the Auth0 calls, with no session and no connection held, cut short at 80% of the
   lease so that a lease never runs out under a live worker.
4. record: one short transaction marks the job done (or schedules its retry) only if the lease
   is still ours, and makes the writes the answers call for (an Auth0 id to keep). Those writes
   are made even if the rows changed while Auth0 was called, or the lease was lost: what Auth0
   created must be known here, or nothing could ever undo it there (an invitation revoked
   meanwhile would stay open at Auth0, emailed and valid). Each is guarded, so it never
   overwrites a newer answer. Then, if the rows changed, the job is enqueued again, and that
   run makes Auth0 match the rows as they are now.

A worker that stops after claiming leaves a lease that expires; the job then runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

import structlog
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.auth0.management import ManagementClient, ManagementError
from saas.db.models import OutboxJob, OutboxStatus

logger = structlog.get_logger("saas.outbox")

MAX_BACKOFF_SECONDS = 300.0
# The share of its lease a job may run for before it is cut short and retried.
RUN_SHARE_OF_LEASE = 0.8

StateT = TypeVar("StateT")
Apply = Callable[[AsyncSession], Awaitable[None]]
# Added to the payload `read` is given: which run of this job this is (1 on the first). A push
# that creates something at Auth0 needs it: after a run that may have reached Auth0 without
# recording its answer (the worker stopped, the call timed out), it looks before creating again.
ATTEMPT_KEY = "_attempt"
# Where the app keeps its in-process worker (saas/auth0/runtime.py), and the mark `enqueue`
# leaves on a session so that the commit wakes that worker (`wake_after_commit`).
WORKER_STATE_KEY = "outbox_worker"
_ENQUEUED = "saas.outbox_enqueued"


@dataclass(frozen=True, slots=True)
class JobHandler(Generic[StateT]):
    """One kind of job in two steps, so that no transaction is open while Auth0 is called.

    `read` copies what the call needs out of the database (plain values, no ORM objects) in a
    short read-only transaction; it runs again when the result is recorded, and a different
    answer means the rows changed during the call. `push` makes Auth0 match that state with no
    session at all, and returns the database writes its answers call for, if any, which the
    worker makes in the transaction that records the job, whether or not the rows changed:
    they must be guarded (write only where the row still lacks the answer) and may find the
    row gone. The payload `read` gets carries the run's number under `ATTEMPT_KEY`."""

    read: Callable[[AsyncSession, dict[str, Any]], Awaitable[StateT]]
    push: Callable[[ManagementClient, StateT], Awaitable[Apply | None]]


@dataclass(frozen=True, slots=True)
class Target:
    """What a job is for: the organization, and the object (type and id) it keeps in step."""

    organization_id: UUID | None
    type: str | None
    id: UUID | None


NO_TARGET = Target(None, None, None)


@dataclass(frozen=True, slots=True)
class Claim:
    """A job this worker holds the lease of."""

    id: UUID
    kind: str
    payload: dict[str, Any]
    attempts: int
    token: str
    target: Target = NO_TARGET

    @property
    def read_input(self) -> dict[str, Any]:
        return {**self.payload, ATTEMPT_KEY: self.attempts}


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def enqueue(
    session: AsyncSession | async_scoped_session[AsyncSession],
    kind: str,
    *,
    target: Target = NO_TARGET,
    **payload: Any,
) -> OutboxJob:
    """Add a job to the caller's transaction; it exists only if the change it mirrors commits."""
    job = OutboxJob(
        kind=kind,
        organization_id=target.organization_id,
        target_type=target.type,
        target_id=target.id,
        payload={k: str(v) if isinstance(v, UUID) else v for k, v in payload.items()},
        status=OutboxStatus.PENDING.value,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(job)
    session.info[_ENQUEUED] = True
    return job


def wake_after_commit(session: AsyncSession, state: Mapping[str, Any]) -> None:
    """After a commit that added jobs: the in-process worker runs them now, not at its next
    poll. A revoked sign-in must not wait a poll interval while its browser signs in again."""
    if session.info.pop(_ENQUEUED, False):
        worker = state.get(WORKER_STATE_KEY)
        if isinstance(worker, OutboxWorker):
            worker.wake()


def backoff_seconds(attempts: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never sooner than the server's Retry-After."""
    ceiling = min(MAX_BACKOFF_SECONDS, 2.0 ** max(0, attempts - 1))
    delay = random.uniform(0, ceiling)  # noqa: S311  (jitter, not security)
    return max(delay, retry_after or 0.0)


def _due(now: datetime.datetime) -> ColumnElement[bool]:
    return (
        (OutboxJob.status == OutboxStatus.PENDING.value)
        & (OutboxJob.next_attempt_at <= now)
        & or_(OutboxJob.leased_until.is_(None), OutboxJob.leased_until <= now)
    )


class OutboxWorker:
    def __init__(
        self,
        session_maker: Callable[[], AsyncSession],
        client: ManagementClient,
        handlers: Mapping[str, JobHandler[Any]],
        *,
        max_attempts: int = 8,
        poll_seconds: float = 1.0,
        lease_seconds: float = 300.0,
    ) -> None:
        self.session_maker = session_maker
        self.client = client
        self.handlers = handlers
        self.max_attempts = max_attempts
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Look for due jobs now (a commit just added some)."""
        self._woken.set()

    # ---- 1. claim ----------------------------------------------------------------------

    async def claim(self) -> Claim | None:
        """Lease the next due job in a transaction of its own (committed on return)."""
        async with self.session_maker() as session, session.begin():
            while True:
                now = utcnow()
                token = uuid.uuid4().hex
                next_due = (
                    select(OutboxJob.id)
                    .where(_due(now))
                    .order_by(OutboxJob.next_attempt_at, OutboxJob.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has no row locks
                    .scalar_subquery()
                )
                # `_due` again on the UPDATE itself: PostgreSQL re-checks it against the row as
                # another worker may just have committed it, so a job is never leased twice.
                statement = (
                    update(OutboxJob)
                    .where(OutboxJob.id == next_due, _due(now))
                    .values(
                        lease_token=token,
                        leased_until=now + datetime.timedelta(seconds=self.lease_seconds),
                        attempts=OutboxJob.attempts + 1,
                        updated_at=now,
                    )
                    .returning(
                        OutboxJob.id,
                        OutboxJob.kind,
                        OutboxJob.payload,
                        OutboxJob.attempts,
                        OutboxJob.organization_id,
                        OutboxJob.target_type,
                        OutboxJob.target_id,
                    )
                    .execution_options(synchronize_session=False)
                )
                row = (await session.execute(statement)).one_or_none()
                if row is None:
                    return None
                target = Target(row.organization_id, row.target_type, row.target_id)
                claim = Claim(row.id, row.kind, dict(row.payload), row.attempts, token, target)
                if claim.attempts <= self.max_attempts:
                    return claim
                # Claimed again and again, never recorded: each worker stopped while running
                # it. Give up on it rather than take workers down with it forever.
                await self._release(
                    session,
                    claim,
                    status=OutboxStatus.FAILED.value,
                    last_error="No result was recorded for its last attempts: the worker "
                    "running it stopped each time.",
                )
                logger.error("outbox_job_abandoned", kind=claim.kind, job_id=str(claim.id))

    # ---- 2-4. read, push, record -------------------------------------------------------

    async def run_one(self) -> bool:
        """Claim and run one due job; False when none is due."""
        claim = await self.claim()
        if claim is None:
            return False
        await self.run(claim)
        return True

    async def run(self, claim: Claim) -> str | None:
        """Run a claimed job; the status it was recorded with, None if the lease was lost."""
        handler = self.handlers.get(claim.kind)
        try:
            if handler is None:
                raise ManagementError(f"no handler for job kind {claim.kind!r}")
            async with asyncio.timeout(self.lease_seconds * RUN_SHARE_OF_LEASE):
                async with self.session_maker() as session, session.begin():
                    state = await handler.read(session, claim.read_input)
                # The session is closed here: no transaction, no pooled connection held.
                apply = await handler.push(self.client, state)
        except ManagementError as error:
            return await self._record_failure(claim, error)
        except TimeoutError:
            return await self._record_failure(
                claim, ManagementError("took longer than its lease allows", retry_after=1.0)
            )
        except Exception as error:  # a bug or a database hiccup: counted, retried, then failed
            logger.exception("outbox_handler_crashed", kind=claim.kind, job_id=str(claim.id))
            return await self._record_failure(
                claim, ManagementError(f"{type(error).__name__}: {error}", retry_after=1.0)
            )
        return await self._record_success(claim, handler, state, apply)

    async def _release(self, session: AsyncSession, claim: Claim, **values: Any) -> bool:
        """End the lease with `values`, if it is still ours. False: it expired and another
        worker has the job now (or has finished it), so this worker records nothing."""
        result = await session.execute(
            update(OutboxJob)
            .where(OutboxJob.id == claim.id, OutboxJob.lease_token == claim.token)
            .values(lease_token=None, leased_until=None, updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def _record_success(
        self, claim: Claim, handler: JobHandler[Any], state: Any, apply: Apply | None
    ) -> str | None:
        async with self.session_maker() as session, session.begin():
            done = OutboxStatus.DONE.value
            ours = await self._release(
                session, claim, status=done, done_at=utcnow(), last_error=None
            )
            unchanged = False
            if ours:
                # Compared before `apply` writes: its own writes change what `read` returns.
                with contextlib.suppress(ManagementError):
                    unchanged = await handler.read(session, claim.read_input) == state
            if apply is not None:
                await apply(session)
            if not ours:
                # Our calls may have reached Auth0 after those of the worker that took over:
                # one more run from the current rows settles it.
                self._enqueue_again(session, claim, "outbox_lease_lost")
                return None
            if not unchanged:
                # Auth0 now reflects rows as they were: make it match them as they are.
                self._enqueue_again(session, claim, "outbox_rows_changed_during_call")
        logger.info(
            "outbox_job_done", kind=claim.kind, job_id=str(claim.id), attempts=claim.attempts
        )
        return done

    def _enqueue_again(self, session: AsyncSession, claim: Claim, event: str) -> None:
        logger.info(event, kind=claim.kind, job_id=str(claim.id))
        enqueue(session, claim.kind, target=claim.target, **claim.payload)

    async def _record_failure(self, claim: Claim, error: ManagementError) -> str | None:
        values: dict[str, Any] = {"last_error": str(error)[:2000]}
        if error.transient and claim.attempts < self.max_attempts:
            values["next_attempt_at"] = utcnow() + datetime.timedelta(
                seconds=backoff_seconds(claim.attempts, error.retry_after)
            )
            status = OutboxStatus.PENDING.value
            logger.warning(
                "outbox_job_retry", kind=claim.kind, job_id=str(claim.id), error=str(error)
            )
        else:
            status = values["status"] = OutboxStatus.FAILED.value
            logger.error(
                "outbox_job_failed", kind=claim.kind, job_id=str(claim.id), error=str(error)
            )
        async with self.session_maker() as session, session.begin():
            if not await self._release(session, claim, **values):
                logger.warning("outbox_lease_lost", kind=claim.kind, job_id=str(claim.id))
                return None
        return status

    # ---- running -----------------------------------------------------------------------

    async def drain(self, *, max_jobs: int = 10_000) -> int:
        """Run due jobs until none is due (used by `saas outbox run --once` and tests)."""
        done = 0
        while done < max_jobs and await self.run_one():
            done += 1
        return done

    async def run_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                worked = await self.run_one()
            except Exception:  # keep the worker alive; an unrecorded lease expires
                logger.exception("outbox_worker_error")
                worked = False
            if not worked:
                await self._idle()

    async def _idle(self) -> None:
        """Wait a poll interval, or less if stopped or woken."""
        if self._woken.is_set():
            self._woken.clear()
            return
        waits = [asyncio.ensure_future(e.wait()) for e in (self._stopping, self._woken)]
        try:
            await asyncio.wait(
                waits, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for wait in waits:
                wait.cancel()
        self._woken.clear()

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self.run_forever(), name="outbox-worker")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
