"""The sync state of an object the app keeps in step with Auth0, read from its outbox jobs in
the page's own queries (never a call to Auth0): pending while a job for it is waiting or
retrying, failed when its latest job gave up, in step when its latest job is done.

Jobs are state-sync jobs (saas/auth0/outbox.py): the latest one makes Auth0 match the rows as
they are, so an older failure is settled by a newer success, and any job still due means
Auth0 may not have the latest change yet."""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import Select, bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.db.models import OutboxJob, OutboxStatus
from saas.errors import InvalidInput

Session = AsyncSession | async_scoped_session[AsyncSession]


class SyncStatus(enum.StrEnum):
    PENDING = "pending"
    IN_STEP = "in_step"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SyncState:
    status: SyncStatus
    # For a failure: why, in words for the organization's admin (not the raw error, which
    # the operator console shows), and the job a retry queues again.
    reason: str | None = None
    job_id: UUID | None = None

    @property
    def failed(self) -> bool:
        return self.status is SyncStatus.FAILED

    @property
    def pending(self) -> bool:
        return self.status is SyncStatus.PENDING


# Known failures, by a piece of the recorded error (saas/auth0/management.py writes
# "{method} {url}: {status} {Auth0's message}"), in plain words. First match wins.
_REASONS: tuple[tuple[str, str], ...] = (
    (
        "belongs to someone else",
        "Auth0 already has a connection with this name that this organization did not create, "
        "so it was left alone. Ask the operator to rename or remove that connection at Auth0, "
        "then retry.",
    ),
    ("no Auth0 role named", "Auth0 has no role with this name. Ask the operator to add it."),
    ("invitations were created at Auth0", "Auth0 has too many invitations to look this one up."),
    ("timed out", "Auth0 did not answer in time, again and again."),
    ("rate limited", "Auth0 refused too many requests in a row."),
    (": 401", "Auth0 refused the app's credentials. Ask the operator to check them."),
    (": 403", "The app is not allowed to make this change at Auth0. Ask the operator."),
    (": 5", "Auth0 had an error each time it was asked."),
    ("is not at Auth0 yet", "Something it depends on was never set up at Auth0."),
    ("worker running it stopped", "The change was started but never finished."),
)
_UNKNOWN = "Auth0 did not accept the change. The operator can see the details."


def plain_reason(last_error: str | None) -> str:
    text = last_error or ""
    for needle, reason in _REASONS:
        if needle in text:
            return reason
    return _UNKNOWN


def _state(latest: OutboxJob, *, pending: bool) -> SyncState:
    """From an object's latest job, and whether any of its jobs is still due."""
    if pending:
        return SyncState(SyncStatus.PENDING)
    if latest.status == OutboxStatus.FAILED.value:
        return SyncState(SyncStatus.FAILED, plain_reason(latest.last_error), latest.id)
    return SyncState(SyncStatus.IN_STEP)


def _latest_jobs() -> Select[tuple[OutboxJob, int]]:
    """Each listed target's newest job, and whether any of its jobs is still due. Built once:
    a members page runs it on every view, and building it cost more than running it."""
    by_target = OutboxJob.target_id
    newest = (
        select(
            OutboxJob.id,
            func.row_number()
            .over(
                partition_by=by_target,
                # UUIDv7 ids grow with time: the newest job first, also within one instant.
                order_by=(OutboxJob.created_at.desc(), OutboxJob.id.desc()),
            )
            .label("rank"),
            func.max(case((OutboxJob.status == OutboxStatus.PENDING.value, 1), else_=0))
            .over(partition_by=by_target)
            .label("due"),
        )
        .where(
            OutboxJob.organization_id == bindparam("organization_id"),
            OutboxJob.target_type == bindparam("target_type"),
            by_target.in_(bindparam("ids", expanding=True)),
        )
        .subquery()
    )
    return (
        select(OutboxJob, newest.c.due)
        .join(newest, newest.c.id == OutboxJob.id)
        .where(newest.c.rank == 1)
    )


_LATEST_JOBS = _latest_jobs()


async def sync_states(
    session: Session, organization_id: UUID, target_type: str, target_ids: Iterable[UUID]
) -> dict[UUID, SyncState]:
    """The state of each object with jobs; objects without any are left out (made before
    jobs recorded their target, or never synced). One query on the target index, however
    many jobs an object has had: each object's latest job, with whether any of its jobs is
    still due (so a page adds one statement for all its rows, not one per row)."""
    ids = list(target_ids)
    if not ids:
        return {}
    latest = await session.execute(
        _LATEST_JOBS,
        {"organization_id": organization_id, "target_type": target_type, "ids": ids},
    )
    states: dict[UUID, SyncState] = {}
    for job, due in latest.tuples():
        assert job.target_id is not None  # filtered on above
        states[job.target_id] = _state(job, pending=bool(due))
    return states


async def sync_state(
    session: Session, organization_id: UUID, target_type: str, target_id: UUID
) -> SyncState | None:
    return (await sync_states(session, organization_id, target_type, [target_id])).get(target_id)


async def sync_in_flight(session: Session, organization_id: UUID, target_type: str) -> bool:
    """Whether a worker holds the lease on a job of this kind of target in this organization
    now: it is calling Auth0, or recording Auth0's answer."""
    now = datetime.datetime.now(datetime.UTC)
    leased = (
        select(OutboxJob.id)
        .where(
            OutboxJob.organization_id == organization_id,
            OutboxJob.target_type == target_type,
            OutboxJob.status == OutboxStatus.PENDING.value,
            OutboxJob.leased_until > now,
        )
        .exists()
    )
    return bool(await session.scalar(select(leased)))


async def retry_failed(session: Session, job_id: UUID, organization_id: UUID | None) -> OutboxJob:
    """Queue a failed job again. With `organization_id`, only that organization's jobs: a
    tenant admin retries their own. The caller's transaction commits it."""
    statement = select(OutboxJob).where(
        OutboxJob.id == job_id, OutboxJob.status == OutboxStatus.FAILED.value
    )
    if organization_id is not None:
        statement = statement.where(OutboxJob.organization_id == organization_id)
    job = (await session.execute(statement.with_for_update())).scalar_one_or_none()
    if job is None:
        raise InvalidInput("Only failed jobs can be retried.")
    job.status = OutboxStatus.PENDING.value
    job.attempts = 0
    job.next_attempt_at = datetime.datetime.now(datetime.UTC)
    return job
