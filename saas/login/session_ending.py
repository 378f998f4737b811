"""Ending a person's sessions in an organization when their access to it ends.

A service that removes a member (or suspends an organization) calls `end_sessions_on_commit`
inside its transaction: the forced sign-out is audited there, with the change, and the sessions
are ended from the session store once that transaction has committed
(`end_committed_sessions`, called by saas.web.commit), never before: a change that is rolled
back ends nobody's session, and no store call runs inside the transaction.

Should the store call fail after the commit, the sessions still cannot enter the organization:
the tenant resolver refuses a session whose active organization no longer admits it, and takes
that organization out of it, at its next request there (saas.tenancy.resolver).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

import structlog

from saas.audit.actions import AuditAction
from saas.audit.services import Actor, AuditService

if TYPE_CHECKING:
    from litestar import Litestar
    from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

logger = structlog.get_logger("saas.sessions")

_PENDING = "saas.sessions_to_end"


@dataclass(frozen=True, slots=True)
class SessionsToEnd:
    user_ids: tuple[UUID, ...]
    organization_id: UUID


async def end_sessions_on_commit(
    db: AsyncSession | async_scoped_session[AsyncSession],
    *,
    user_ids: Iterable[UUID],
    organization_id: UUID,
    actor: Actor,
    reason: str,
) -> None:
    """Audit, now, that these people's sessions in the organization end; end them after the
    commit."""
    users = tuple(user_ids)
    if not users:
        return
    one = users[0] if len(users) == 1 else None
    await AuditService(session=db).record(
        AuditAction.SESSIONS_ENDED_ACCESS,
        actor=actor,
        organization_id=organization_id,
        target_type="user" if one else "organization",
        target_id=one or organization_id,
        details={"reason": reason, "people": len(users)},
    )
    db.info.setdefault(_PENDING, []).append(SessionsToEnd(users, organization_id))


def forget_pending(db: AsyncSession) -> None:
    db.info.pop(_PENDING, None)


async def end_committed_sessions(db: AsyncSession, app: Litestar) -> None:
    """After a commit: end the sessions its transaction said to end."""
    pending: list[SessionsToEnd] = db.info.pop(_PENDING, [])
    if not pending:
        return
    from saas.login.session_directory import SessionDirectory

    directory = SessionDirectory.of(app)
    for item in pending:
        for user_id in item.user_ids:
            try:
                ended = await directory.end_in_organization(user_id, item.organization_id)
            except Exception:  # the resolver still refuses them; see the module's doc
                logger.exception("sessions_not_ended", user_id=str(user_id))
                continue
            if ended:
                logger.info(
                    "sessions_ended",
                    user_id=str(user_id),
                    organization_id=str(item.organization_id),
                    count=ended,
                )
