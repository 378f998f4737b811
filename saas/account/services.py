"""A person's Auth0 sessions, revoked when they end an app session on "Your sessions".

The app session is the store entry (saas.login.session_directory); the browser that held it
also has an Auth0 session, which would sign it straight back in, without a password, at its
next click. Ending an app session therefore asks Auth0, through the outbox, to revoke the
Auth0 session its sign-in came from (the ID token's `sid`, kept in the app session): a job
written in the request's transaction and run by the worker after the commit, with the outbox's
retries. The page shows each revocation that is waiting or failed, in plain words, until it is
done: a revocation that did not happen never looks like one that did.

Where the tenant lacks Auth0's session management (an Enterprise-plan feature),
`AUTH0_REVOKE_SESSIONS=false` turns it off and the page says what that means.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.auth0.jobs import AUTH0_SESSION_REVOKE, AUTH0_SESSION_TARGET, revoke_auth0_session_later
from saas.auth0.sync_state import plain_reason
from saas.db.models import OutboxJob, OutboxStatus
from saas.login.session_directory import SessionSummary

Session = AsyncSession | async_scoped_session[AsyncSession]

# How many, and for how long, revocations that are not done yet are shown.
SHOWN = 5
SHOWN_FOR = datetime.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Revocation:
    device: str
    failed: bool
    reason: str | None
    created_at: datetime.datetime


def revoke_ended(
    db: Session,
    user_id: UUID,
    ended: Iterable[SessionSummary],
    remaining: Iterable[SessionSummary],
) -> int:
    """Queue the revocation of the Auth0 sessions of `ended`, in the caller's transaction.
    Never one a remaining session of the person still came from: two app sessions can share
    an Auth0 session (signed in again in the same browser), and the one kept must stay
    signed in. Returns how many of `ended` will have their Auth0 session revoked."""
    kept = {s.auth0_sid for s in remaining if s.auth0_sid}
    queued: set[str] = set()
    covered = 0
    for summary in ended:
        sid = summary.auth0_sid
        if not sid or sid in kept:
            continue
        covered += 1
        if sid not in queued:
            revoke_auth0_session_later(db, user_id, sid, device=summary.device)
            queued.add(sid)
    return covered


async def revocations_of(db: Session, user_id: UUID) -> list[Revocation]:
    """The person's recent revocations that are still waiting or that failed, newest first."""
    since = datetime.datetime.now(datetime.UTC) - SHOWN_FOR
    jobs = await db.scalars(
        select(OutboxJob)
        .where(
            OutboxJob.organization_id.is_(None),
            OutboxJob.target_type == AUTH0_SESSION_TARGET,
            OutboxJob.target_id == user_id,
            OutboxJob.kind == AUTH0_SESSION_REVOKE,
            OutboxJob.status != OutboxStatus.DONE.value,
            OutboxJob.created_at >= since,
        )
        .order_by(OutboxJob.created_at.desc(), OutboxJob.id.desc())
        .limit(SHOWN)
    )
    shown = []
    for job in jobs:
        failed = job.status == OutboxStatus.FAILED.value
        shown.append(
            Revocation(
                device=str(job.payload.get("device") or "another browser"),
                failed=failed,
                reason=plain_reason(job.last_error) if failed else None,
                created_at=job.created_at,
            )
        )
    return shown
