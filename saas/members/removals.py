"""Removals that stick: a person an administrator removed is not added back by just-in-time
provisioning (saas/login/membership.py) until an administrator invites them again.

Each removal leaves a row in `removed_members` (saas/db/models/removed_member.py), written in
the removal's own transaction under the organization's lock; the just-in-time write reads it
under the same lock, so a removal racing a sign-in either lands first and is seen, or lands
after the sign-in's membership exists and removes it. Accepting an invitation sent after the
removal deletes the row in the acceptance's transaction; one sent before it (still open from
before the person joined) is refused: the removal is the later word."""

from __future__ import annotations

import datetime
from uuid import UUID

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.audit.actions import AuditAction
from saas.audit.services import Actor, AuditService
from saas.auth0.jobs import sync_invitation_later
from saas.db.models import Invitation, RemovedMember, User
from saas.errors import InvalidInput
from saas.organizations.domains import normalize_email

Session = AsyncSession | async_scoped_session[AsyncSession]


def _address(value: str) -> str:
    """The address a removal is kept under: normalized, or as it is (folded) for a user whose
    email is no address (a directory placeholder with only a userName), never a refusal."""
    try:
        return normalize_email(value)
    except InvalidInput:
        return value.strip().casefold()[:320]


def _of_person(organization_id: UUID, user_id: UUID, email: str | None) -> ColumnElement[bool]:
    """This organization's removal rows of this user, or of this address under another login
    identity (the same mailbox through another connection has another `sub`)."""
    person = RemovedMember.user_id == user_id
    if email:
        person = or_(person, RemovedMember.email == _address(email))
    return and_(RemovedMember.organization_id == organization_id, person)


async def record_removal(session: Session, organization_id: UUID, user_id: UUID) -> None:
    """Remember that this person was removed. Called with the organization's lock held, so
    the look-up and the insert cannot race another removal of the same person."""
    user = await session.get_one(User, user_id)
    email = _address(user.email)
    existing = await session.scalar(
        select(RemovedMember.id).where(
            RemovedMember.organization_id == organization_id, RemovedMember.user_id == user_id
        )
    )
    if existing is not None:
        # Removed again after being added some other way: the latest removal counts.
        await session.execute(
            update(RemovedMember)
            .where(RemovedMember.id == existing)
            .values(email=email, updated_at=datetime.datetime.now(datetime.UTC))
        )
        return
    session.add(RemovedMember(organization_id=organization_id, user_id=user_id, email=email))
    await session.flush()


async def withdraw_open_invitations(
    session: Session, organization_id: UUID, user_id: UUID, *, actor: Actor
) -> int:
    """Revoke the open invitations to the removed person's address: one sent before the
    removal (invited, then joined just in time) must not bring them back. One UPDATE that
    skips an invitation accepted meanwhile (the acceptance's UPDATE skips a revoked one), so
    an invitation ends up either accepted or revoked, never both."""
    user = await session.get(User, user_id)
    if user is None:
        return 0
    withdrawn = await session.execute(
        update(Invitation)
        .where(
            Invitation.organization_id == organization_id,
            Invitation.email == _address(user.email),
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .values(revoked_at=datetime.datetime.now(datetime.UTC))
        .returning(Invitation.id)
        .execution_options(synchronize_session=False)
    )
    ids = list(withdrawn.scalars())
    audit = AuditService(session=session)
    for invitation_id in ids:
        sync_invitation_later(session, organization_id, invitation_id)
        await audit.record(
            AuditAction.INVITATION_REVOKED,
            actor=actor,
            organization_id=organization_id,
            target_type="invitation",
            target_id=invitation_id,
            details={"email": user.email, "reason": "member_removed"},
        )
    return len(ids)


async def removed_at(
    session: Session, organization_id: UUID, user_id: UUID, email: str | None = None
) -> datetime.datetime | None:
    """When this person (this user, or this address) was last removed, if they were."""
    return await session.scalar(
        select(func.max(RemovedMember.updated_at)).where(
            _of_person(organization_id, user_id, email)
        )
    )


async def was_removed(
    session: Session, organization_id: UUID, user_id: UUID, email: str | None = None
) -> bool:
    found = await session.scalar(
        select(RemovedMember.id).where(_of_person(organization_id, user_id, email)).limit(1)
    )
    return found is not None


async def forget_removal(
    session: Session, organization_id: UUID, user_id: UUID, email: str | None = None
) -> None:
    """Someone let them in again (an invitation accepted, the directory): every removal row of
    this user and of this address goes."""
    await session.execute(delete(RemovedMember).where(_of_person(organization_id, user_id, email)))
