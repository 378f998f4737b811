"""The outbox: Auth0 changes written in the same transaction as the app's change, drained by a
worker with retries, so nothing is lost when Auth0 is slow or down.

Jobs are *state sync* jobs ("make Auth0's view of this membership match ours"), read the
database when they run, and are idempotent: retries, duplicates and reordering all converge.
On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets several workers share the queue; each job is
claimed, executed and completed in its own short transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import false, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.auth0.management import ManagementClient, ManagementError
from saas.db.models import OutboxJob, OutboxStatus

logger = structlog.get_logger("saas.outbox")

MAX_BACKOFF_SECONDS = 300.0
Handler = Callable[[AsyncSession, ManagementClient, dict[str, Any]], Awaitable[None]]


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def enqueue(
    session: AsyncSession | async_scoped_session[AsyncSession], kind: str, **payload: Any
) -> OutboxJob:
    """Add a job to the caller's transaction; it exists only if the change it mirrors commits."""
    job = OutboxJob(
        kind=kind,
        payload={k: str(v) if isinstance(v, UUID) else v for k, v in payload.items()},
        status=OutboxStatus.PENDING.value,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(job)
    return job


def backoff_seconds(attempts: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never sooner than the server's Retry-After."""
    ceiling = min(MAX_BACKOFF_SECONDS, 2.0 ** max(0, attempts - 1))
    delay = random.uniform(0, ceiling)  # noqa: S311  (jitter, not security)
    return max(delay, retry_after or 0.0)


class OutboxWorker:
    def __init__(
        self,
        session_maker: Callable[[], AsyncSession],
        client: ManagementClient,
        handlers: Mapping[str, Handler],
        *,
        max_attempts: int = 8,
        poll_seconds: float = 1.0,
    ) -> None:
        self.session_maker = session_maker
        self.client = client
        self.handlers = handlers
        self.max_attempts = max_attempts
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def _claim(self, session: AsyncSession) -> OutboxJob | None:
        dialect = session.get_bind().dialect.name
        if dialect == "sqlite":
            # SQLite cannot upgrade a read transaction once another writer has committed, so
            # take the write lock first (a no-op write), as BEGIN IMMEDIATE would.
            await session.execute(
                update(OutboxJob).where(false()).values(attempts=OutboxJob.attempts)
            )
        statement = (
            select(OutboxJob)
            .where(
                OutboxJob.status == OutboxStatus.PENDING.value,
                OutboxJob.next_attempt_at <= utcnow(),
            )
            .order_by(OutboxJob.next_attempt_at, OutboxJob.id)
            .limit(1)
        )
        if dialect == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        return (await session.execute(statement)).scalar_one_or_none()

    async def run_one(self) -> bool:
        """Claim and run one due job; False when none is due."""
        async with self.session_maker() as session, session.begin():
            job = await self._claim(session)
            if job is None:
                return False
            await self._execute(session, job)
            return True

    async def _execute(self, session: AsyncSession, job: OutboxJob) -> None:
        handler = self.handlers.get(job.kind)
        job.attempts += 1
        try:
            if handler is None:
                raise ManagementError(f"no handler for job kind {job.kind!r}")
            async with session.begin_nested():
                await handler(session, self.client, dict(job.payload))
        except ManagementError as error:
            self._record_failure(job, error)
            return
        except Exception as error:  # a bug or a database hiccup: counted, retried, then failed
            logger.exception("outbox_handler_crashed", kind=job.kind, job_id=str(job.id))
            self._record_failure(
                job, ManagementError(f"{type(error).__name__}: {error}", retry_after=1.0)
            )
            return
        job.status = OutboxStatus.DONE.value
        job.done_at = utcnow()
        job.last_error = None
        logger.info("outbox_job_done", kind=job.kind, job_id=str(job.id), attempts=job.attempts)

    def _record_failure(self, job: OutboxJob, error: ManagementError) -> None:
        job.last_error = str(error)[:2000]
        if error.transient and job.attempts < self.max_attempts:
            job.next_attempt_at = utcnow() + datetime.timedelta(
                seconds=backoff_seconds(job.attempts, error.retry_after)
            )
            logger.warning("outbox_job_retry", kind=job.kind, job_id=str(job.id), error=str(error))
        else:
            job.status = OutboxStatus.FAILED.value
            logger.error("outbox_job_failed", kind=job.kind, job_id=str(job.id), error=str(error))

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
            except Exception:  # keep the worker alive; the job's transaction rolled back
                logger.exception("outbox_worker_error")
                worked = False
            if not worked:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.poll_seconds)

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self.run_forever(), name="outbox-worker")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
