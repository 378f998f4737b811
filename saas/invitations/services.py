"""Invitation rules: one pending invitation per email per organization, never for an
existing member, never for a role above the inviter's, accepted only by the invitee's email."""

from __future__ import annotations

import datetime
from uuid import UUID

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import func, select

from saas.audit.actions import AuditAction
from saas.audit.services import Actor, AuditService
from saas.auth.permissions import Role
from saas.auth0.jobs import sync_invitation_later
from saas.db.models import Invitation, Membership, User
from saas.errors import Conflict, Forbidden, NotFound
from saas.invitations.tickets import hash_ticket, new_ticket
from saas.members.services import MembershipService, check_may_grant, parse_role
from saas.organizations.domains import normalize_email


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class InvitationRepository(SQLAlchemyAsyncRepository[Invitation]):
    model_type = Invitation


class InvitationService(SQLAlchemyAsyncRepositoryService[Invitation, InvitationRepository]):
    repository_type = InvitationRepository

    @property
    def _audit(self) -> AuditService:
        return AuditService(session=self.repository.session)

    async def _is_member(self, organization_id: UUID, email: str) -> bool:
        stmt = (
            select(Membership.id)
            .join(User, User.id == Membership.user_id)
            .where(Membership.organization_id == organization_id, User.email == email)
            .limit(1)
        )
        return (await self.repository.session.execute(stmt)).first() is not None

    async def page(
        self, organization_id: UUID, *, open_only: bool, limit: int, offset: int
    ) -> tuple[list[Invitation], int]:
        """Newest first. `open_only`: neither accepted nor revoked (expired ones stay visible,
        marked, so an admin can resend them)."""
        statement = select(Invitation).where(Invitation.organization_id == organization_id)
        if open_only:
            statement = statement.where(
                Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None)
            )
        total = await self.repository.session.scalar(
            select(func.count()).select_from(statement.subquery())
        )
        rows = await self.repository.session.execute(
            statement.order_by(Invitation.created_at.desc(), Invitation.id)
            .limit(limit)
            .offset(offset)
        )
        return list(rows.scalars()), int(total or 0)

    async def find_pending(self, organization_id: UUID, email: str) -> Invitation | None:
        candidates = await self.repository.get_many(organization_id=organization_id, email=email)
        now = utcnow()
        return next((inv for inv in candidates if inv.is_pending(now)), None)

    async def invite(
        self,
        *,
        organization_id: UUID,
        email: str,
        role: Role | str,
        actor: Actor,
        actor_role: Role | None,
        ttl: datetime.timedelta,
    ) -> tuple[Invitation, str]:
        """Create an invitation; returns it with the plain ticket (shown once, never stored)."""
        email = normalize_email(email)
        parsed_role = parse_role(role)
        check_may_grant(actor_role, parsed_role)
        if await self._is_member(organization_id, email):
            raise Conflict(f"{email} is already a member of this organization.", field="email")
        if await self.find_pending(organization_id, email) is not None:
            raise Conflict(f"{email} already has a pending invitation.", field="email")
        ticket = new_ticket()
        invitation = await self.repository.add(
            Invitation(
                organization_id=organization_id,
                email=email,
                role=parsed_role.value,
                inviter_id=actor.user_id,
                token_hash=hash_ticket(ticket),
                expires_at=utcnow() + ttl,
            ),
            auto_commit=False,
        )
        sync_invitation_later(self.repository.session, invitation.id)
        await self._audit.record(
            AuditAction.INVITATION_CREATED,
            actor=actor,
            organization_id=organization_id,
            target_type="invitation",
            target_id=invitation.id,
            details={"email": email, "role": parsed_role.value},
        )
        return invitation, ticket

    async def record_auth0_ticket(
        self, *, invitation_id: UUID, auth0_invitation_id: str, ticket: str
    ) -> Invitation:
        """Auth0 issues the ticket that its invitation link carries; from then on that ticket,
        not ours, is what /invitation checks (still only as a hash)."""
        invitation = await self.repository.get(invitation_id)
        invitation.auth0_invitation_id = auth0_invitation_id
        invitation.token_hash = hash_ticket(ticket)
        return await self.repository.update(invitation, auto_commit=False)

    async def _get_in_org(self, organization_id: UUID, invitation_id: UUID) -> Invitation:
        invitation = await self.repository.get_one_or_none(
            id=invitation_id, organization_id=organization_id
        )
        if invitation is None:
            raise NotFound("No such invitation in this organization.")
        return invitation

    async def revoke(
        self,
        *,
        organization_id: UUID,
        invitation_id: UUID,
        actor: Actor,
        actor_role: Role | None = None,
    ) -> Invitation:
        invitation = await self._get_in_org(organization_id, invitation_id)
        # An admin may neither re-arm nor withdraw an invitation above their own role.
        check_may_grant(actor_role, Role(invitation.role))
        if invitation.accepted_at is not None:
            raise Conflict("This invitation was already accepted.")
        if invitation.revoked_at is None:
            invitation.revoked_at = utcnow()
            invitation = await self.repository.update(invitation, auto_commit=False)
            sync_invitation_later(self.repository.session, invitation.id)
            await self._audit.record(
                AuditAction.INVITATION_REVOKED,
                actor=actor,
                organization_id=organization_id,
                target_type="invitation",
                target_id=invitation.id,
                details={"email": invitation.email},
            )
        return invitation

    async def resend(
        self,
        *,
        organization_id: UUID,
        invitation_id: UUID,
        actor: Actor,
        ttl: datetime.timedelta,
        actor_role: Role | None = None,
    ) -> tuple[Invitation, str]:
        """A new ticket and a fresh expiry; the old ticket stops working at once."""
        invitation = await self._get_in_org(organization_id, invitation_id)
        check_may_grant(actor_role, Role(invitation.role))
        if invitation.accepted_at is not None or invitation.revoked_at is not None:
            raise Conflict("Only open invitations can be resent.")
        ticket = new_ticket()
        stale = [invitation.auth0_invitation_id] if invitation.auth0_invitation_id else []
        invitation.token_hash = hash_ticket(ticket)
        invitation.auth0_invitation_id = None
        invitation.expires_at = utcnow() + ttl
        invitation = await self.repository.update(invitation, auto_commit=False)
        # Auth0 gets a new invitation (a new ticket, emailed again) and loses the old one.
        sync_invitation_later(self.repository.session, invitation.id, delete_auth0_ids=stale)
        await self._audit.record(
            AuditAction.INVITATION_RESENT,
            actor=actor,
            organization_id=organization_id,
            target_type="invitation",
            target_id=invitation.id,
            details={"email": invitation.email},
        )
        return invitation, ticket

    async def get_pending_by_ticket(self, organization_id: UUID, ticket: str) -> Invitation:
        invitation = await self.repository.get_one_or_none(
            token_hash=hash_ticket(ticket), organization_id=organization_id
        )
        if invitation is None or not invitation.is_pending(utcnow()):
            # One message for unknown, expired, revoked and used: nothing to probe.
            raise NotFound("This invitation is not valid any more. Ask for a new one.")
        return invitation

    async def accept(
        self, *, organization_id: UUID, ticket: str, user: User, actor: Actor
    ) -> Membership:
        invitation = await self.get_pending_by_ticket(organization_id, ticket)
        if normalize_email(user.email) != invitation.email:
            raise Forbidden("This invitation was sent to a different email address.")
        invitation.accepted_at = utcnow()
        await self.repository.update(invitation, auto_commit=False)
        await self._audit.record(
            AuditAction.INVITATION_ACCEPTED,
            actor=actor,
            organization_id=organization_id,
            target_type="invitation",
            target_id=invitation.id,
            details={"email": invitation.email, "role": invitation.role},
        )
        members = MembershipService(session=self.repository.session)
        existing = await members.find(organization_id, user.id)
        if existing is not None:
            return existing
        return await members.add(
            organization_id=organization_id,
            user_id=user.id,
            role=invitation.role,
            actor=actor,
            via="invitation",
        )
