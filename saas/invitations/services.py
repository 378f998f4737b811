"""Invitation rules: one pending invitation per email per organization, never for an
existing member, never for a role above the inviter's, accepted only by the invitee's email.
A list of addresses is invited all or nothing (`invite_many`).

"One open invitation per address" is the database's rule too (a partial unique index, see the
model): two racing requests cannot both pass the check below; the loser gets the same 409.
The inviter's own role is re-read inside the write's transaction (saas/tenancy/authority.py)."""

from __future__ import annotations

import datetime
from uuid import UUID

from advanced_alchemy.exceptions import IntegrityError
from advanced_alchemy.filters import OrderBy, StatementFilter
from advanced_alchemy.service import OffsetPagination
from sqlalchemy import ColumnElement, update
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.audit.actions import AuditAction
from saas.audit.services import Actor, AuditService
from saas.auth0.jobs import INVITATION_TARGET, sync_invitation_later
from saas.auth0.sync_state import SyncState, sync_in_flight, sync_states
from saas.db.lists import offset_page
from saas.db.models import Invitation, Membership, User
from saas.db.tenant_repository import TenantScopedRepository
from saas.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from saas.invitations.tickets import hash_ticket, new_ticket
from saas.members.removals import forget_removal, removed_at
from saas.members.services import MembershipService, parse_role
from saas.organizations.domains import normalize_email
from saas.tenancy.authority import ActingMember, acting_role
from saas.tenancy.caller import Caller
from saas.tenancy.permissions import Permission, Role
from saas.tenancy.policy import check_may_grant

# The most addresses one request may invite.
MAX_BATCH = 20


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class InvitationRepository(TenantScopedRepository[Invitation]):
    model_type = Invitation


def _pending_conflict(email: str) -> Conflict:
    return Conflict(f"{email} already has a pending invitation.", field="email")


def _already_member(email: str) -> Conflict:
    return Conflict(f"{email} is already a member of this organization.", field="email")


def _malformed(value: str) -> InvalidInput:
    # One message for a bad local part and a bad domain: it is the address that is wrong.
    return InvalidInput(f"“{value[:320]}” is not a valid email address.", field="email")


def _normalized(value: str) -> str | None:
    try:
        return normalize_email(value)
    except InvalidInput:
        return None


class BatchRefused(DomainError):
    """Nobody in the list was invited. `failures` holds every reason found, each naming its
    field ("email" or "role"); the status is the most telling of theirs."""

    def __init__(self, failures: list[DomainError]) -> None:
        super().__init__(failures[0].detail, field=failures[0].field)
        self.failures = failures
        codes = {failure.status_code for failure in failures}
        self.status_code = next((code for code in (422, 409, 403) if code in codes), 422)


def _not_valid_any_more() -> NotFound:
    # One message for unknown, expired, revoked and used: nothing to probe.
    return NotFound("This invitation is not valid any more. Ask for a new one.")


class InvitationService:
    """Every method names its organization and works through a repository scoped to it."""

    def __init__(self, *, session: AsyncSession | async_scoped_session[AsyncSession]) -> None:
        self.session = session

    def repository_for(self, organization_id: UUID) -> InvitationRepository:
        return InvitationRepository(session=self.session, organization_id=organization_id)

    @property
    def _audit(self) -> AuditService:
        return AuditService(session=self.session)

    async def _is_member(self, organization_id: UUID, email: str) -> bool:
        return bool(
            await MembershipService(session=self.session).member_emails(organization_id, [email])
        )

    async def sync_of(
        self, organization_id: UUID, invitations: list[Invitation]
    ) -> dict[UUID, SyncState]:
        """Whether Auth0 has each invitation as it is here, from the outbox (no Auth0 call)."""
        return await sync_states(
            self.session, organization_id, INVITATION_TARGET, [i.id for i in invitations]
        )

    async def page(
        self, organization_id: UUID, *, open_only: bool, limit: int, offset: int
    ) -> OffsetPagination[Invitation]:
        """Newest first. `open_only`: neither accepted nor revoked (expired ones stay visible,
        marked, so an admin can resend them)."""
        filters: list[StatementFilter | ColumnElement[bool]] = [
            OrderBy(Invitation.created_at, "desc"),
            OrderBy(Invitation.id),
        ]
        if open_only:
            filters += [Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None)]
        return await offset_page(
            self.repository_for(organization_id), *filters, limit=limit, offset=offset
        )

    async def _open_for(self, organization_id: UUID, email: str) -> list[Invitation]:
        """Neither accepted nor revoked: what the unique index allows one of per address."""
        return await self.repository_for(organization_id).get_many(
            Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None), email=email
        )

    async def find_pending(self, organization_id: UUID, email: str) -> Invitation | None:
        now = utcnow()
        candidates = await self._open_for(organization_id, email)
        return next((inv for inv in candidates if inv.is_pending(now)), None)

    async def invite(
        self,
        *,
        organization_id: UUID,
        email: str,
        role: Role | str,
        actor: Actor,
        authority: ActingMember | None,
        ttl: datetime.timedelta,
    ) -> tuple[Invitation, str]:
        """Create an invitation; returns it with the plain ticket (shown once, never stored).

        An expired invitation to the same address is closed (revoked) in the same transaction,
        so that the new one is the address's only open invitation."""
        email = normalize_email(email)
        parsed_role = parse_role(role)
        actor_role = await acting_role(
            self.session, organization_id, authority, Permission.MEMBERS_INVITE
        )
        check_may_grant(actor_role, parsed_role)
        return await self._create(organization_id, email, parsed_role, actor=actor, ttl=ttl)

    async def invite_many(
        self,
        *,
        organization_id: UUID,
        emails: list[str],
        role: Role | str,
        actor: Actor,
        authority: ActingMember | None,
        ttl: datetime.timedelta,
    ) -> list[tuple[Invitation, str]]:
        """Invite every address, or nobody: each is checked before any is written, and a
        refusal met while writing (a racing request invited one meanwhile) undoes the others.
        Raises `BatchRefused` with every reason found; a lost authority (`AuthorityRefused`)
        is raised as it is, not as a reason."""
        failures: list[DomainError] = []
        if not emails:
            failures.append(InvalidInput("Enter at least one email address.", field="email"))
        elif len(emails) > MAX_BATCH:
            failures.append(
                InvalidInput(
                    f"Invite at most {MAX_BATCH} people at once (you entered {len(emails)}).",
                    field="email",
                )
            )
        actor_role = await acting_role(
            self.session, organization_id, authority, Permission.MEMBERS_INVITE
        )
        try:
            parsed_role = parse_role(role)
            check_may_grant(actor_role, parsed_role)
        except DomainError as error:
            failures.append(error)
        if failures:
            # The batch is refused already: still report every malformed address at once.
            failures.extend(_malformed(e) for e in emails[:MAX_BATCH] if _normalized(e) is None)
            raise BatchRefused(failures)
        failures.extend(await self._refusals(organization_id, emails))
        if failures:
            raise BatchRefused(failures)
        invited: list[tuple[Invitation, str]] = []
        async with self.session.begin_nested():
            for email in emails:
                # Each address is checked again as it is written (see above).
                try:
                    invited.append(
                        await self._create(
                            organization_id,
                            normalize_email(email),
                            parsed_role,
                            actor=actor,
                            ttl=ttl,
                        )
                    )
                except DomainError as error:
                    failures.append(error)
            if failures:
                raise BatchRefused(failures)  # rolls the savepoint back: nothing is written
        return invited

    async def _refusals(self, organization_id: UUID, emails: list[str]) -> list[DomainError]:
        """Why each of these addresses cannot be invited: malformed, a member's, or one with a
        pending invitation. The members are found in one query."""
        failures: list[DomainError] = []
        normalized: list[str] = []
        for email in emails:
            found = _normalized(email)
            if found is None:
                failures.append(_malformed(email))
            else:
                normalized.append(found)
        members = await MembershipService(session=self.session).member_emails(
            organization_id, normalized
        )
        for email in normalized:
            if email in members:
                failures.append(_already_member(email))
            elif await self.find_pending(organization_id, email) is not None:
                failures.append(_pending_conflict(email))
        return failures

    async def _create(
        self,
        organization_id: UUID,
        email: str,
        role: Role,
        *,
        actor: Actor,
        ttl: datetime.timedelta,
    ) -> tuple[Invitation, str]:
        """Write one invitation to a normalized address, once the inviter may grant `role`."""
        if await self._is_member(organization_id, email):
            raise _already_member(email)
        now = utcnow()
        open_invitations = await self._open_for(organization_id, email)
        if any(inv.is_pending(now) for inv in open_invitations):
            raise _pending_conflict(email)
        repository = self.repository_for(organization_id)
        ticket = new_ticket()
        try:
            # A savepoint, so that losing the race leaves the request's transaction usable
            # (PostgreSQL aborts a transaction on a failed statement) for the refusal page.
            async with self.session.begin_nested():
                for expired in open_invitations:
                    expired.revoked_at = now
                    await repository.update(expired, auto_commit=False)
                    sync_invitation_later(self.session, organization_id, expired.id)
                invitation = await repository.add(
                    Invitation(
                        email=email,
                        role=role.value,
                        inviter_id=actor.user_id,
                        token_hash=hash_ticket(ticket),
                        expires_at=now + ttl,
                    ),
                    auto_commit=False,
                )
        except IntegrityError:
            # uq_invitations_open_email: a concurrent request invited this address first.
            raise _pending_conflict(email) from None
        sync_invitation_later(self.session, organization_id, invitation.id)
        details: dict[str, object] = {"email": email, "role": role.value}
        if open_invitations:
            details["replaces"] = [str(inv.id) for inv in open_invitations]
        await self._audit.record(
            AuditAction.INVITATION_CREATED,
            actor=actor,
            organization_id=organization_id,
            target_type="invitation",
            target_id=invitation.id,
            details=details,
        )
        return invitation, ticket

    async def record_auth0_ticket(
        self, *, invitation_id: UUID, auth0_invitation_id: str, ticket: str
    ) -> Invitation:
        """Auth0 issues the ticket that its invitation link carries; from then on that ticket,
        not ours, is what /invitation checks (still only as a hash)."""
        invitation = await self.session.get_one(Invitation, invitation_id)
        invitation.auth0_invitation_id = auth0_invitation_id
        invitation.token_hash = hash_ticket(ticket)
        return await self.repository_for(invitation.organization_id).update(
            invitation, auto_commit=False
        )

    async def _get_in_org(self, organization_id: UUID, invitation_id: UUID) -> Invitation:
        invitation = await self.repository_for(organization_id).get_one_or_none(id=invitation_id)
        if invitation is None:
            raise NotFound("No such invitation in this organization.")
        return invitation

    async def revoke(
        self,
        *,
        organization_id: UUID,
        invitation_id: UUID,
        actor: Actor,
        authority: ActingMember | None = None,
    ) -> Invitation:
        actor_role = await acting_role(
            self.session, organization_id, authority, Permission.MEMBERS_INVITE
        )
        invitation = await self._get_in_org(organization_id, invitation_id)
        # Read it again under a row lock (PostgreSQL; SQLite's write lock is already held): an
        # acceptance committing meanwhile must be seen here, or the invitation would end up
        # both accepted and revoked.
        await self.session.refresh(invitation, with_for_update=True)
        # An admin may neither re-arm nor withdraw an invitation above their own role.
        check_may_grant(actor_role, Role(invitation.role))
        if invitation.accepted_at is not None:
            raise Conflict("This invitation was already accepted.")
        if invitation.revoked_at is None:
            invitation.revoked_at = utcnow()
            invitation = await self.repository_for(organization_id).update(
                invitation, auto_commit=False
            )
            sync_invitation_later(self.session, organization_id, invitation.id)
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
        authority: ActingMember | None = None,
    ) -> tuple[Invitation, str]:
        """A new ticket and a fresh expiry; the old ticket stops working at once."""
        actor_role = await acting_role(
            self.session, organization_id, authority, Permission.MEMBERS_INVITE
        )
        invitation = await self._get_in_org(organization_id, invitation_id)
        check_may_grant(actor_role, Role(invitation.role))
        if invitation.accepted_at is not None or invitation.revoked_at is not None:
            raise Conflict("Only open invitations can be resent.")
        ticket = new_ticket()
        stale = [invitation.auth0_invitation_id] if invitation.auth0_invitation_id else []
        invitation.token_hash = hash_ticket(ticket)
        invitation.auth0_invitation_id = None
        invitation.expires_at = utcnow() + ttl
        invitation = await self.repository_for(organization_id).update(
            invitation, auto_commit=False
        )
        # Auth0 gets a new invitation (a new ticket, emailed again) and loses the old one.
        sync_invitation_later(self.session, organization_id, invitation.id, delete_auth0_ids=stale)
        await self._audit.record(
            AuditAction.INVITATION_RESENT,
            actor=actor,
            organization_id=organization_id,
            target_type="invitation",
            target_id=invitation.id,
            details={"email": invitation.email},
        )
        return invitation, ticket

    async def get_by_ticket(self, organization_id: UUID, ticket: str) -> Invitation | None:
        """The invitation this ticket opens, whatever its state (for the refusal that says which
        state it is in: only the link's holder knows the ticket)."""
        return await self.repository_for(organization_id).get_one_or_none(
            token_hash=hash_ticket(ticket)
        )

    async def ticket_being_recorded(self, organization_id: UUID) -> bool:
        """Whether a worker is creating one of this organization's invitations at Auth0 now.

        Auth0 emails the link as it creates the invitation, a moment before the worker records
        the ticket: a link opened in that window is early, not invalid."""
        return await sync_in_flight(self.session, organization_id, INVITATION_TARGET)

    async def get_pending_by_ticket(self, organization_id: UUID, ticket: str) -> Invitation:
        invitation = await self.repository_for(organization_id).get_one_or_none(
            token_hash=hash_ticket(ticket)
        )
        if invitation is None or not invitation.is_pending(utcnow()):
            raise _not_valid_any_more()
        return invitation

    async def accept(
        self, *, organization_id: UUID, ticket: str, user: User, actor: Actor
    ) -> Membership:
        invitation = await self.get_pending_by_ticket(organization_id, ticket)
        if normalize_email(user.email) != invitation.email:
            raise Forbidden("This invitation was sent to a different email address.")
        # An invitation older than the person's removal does not undo it: only a new one does.
        removal = await removed_at(self.session, organization_id, user.id, user.email)
        if removal is not None and removal >= invitation.created_at:
            raise _not_valid_any_more()
        # The read above took no lock: a revoke, or the same invitation accepted in another
        # tab, may commit after it. The UPDATE decides, on the row as it is then (PostgreSQL
        # waits for a transaction that holds the row and re-checks the condition; SQLite's
        # single writer sees the committed row), and nothing is written if it matched none.
        now = utcnow()
        accepted = await self.session.execute(
            update(Invitation)
            .where(
                Invitation.id == invitation.id,
                Invitation.organization_id == organization_id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > now,
            )
            .values(accepted_at=now)
            .returning(Invitation.id)
            .execution_options(synchronize_session=False)
        )
        if accepted.first() is None:
            raise _not_valid_any_more()
        await self.session.refresh(invitation)
        await self._audit.record(
            AuditAction.INVITATION_ACCEPTED,
            actor=actor,
            organization_id=organization_id,
            target_type="invitation",
            target_id=invitation.id,
            details={"email": invitation.email, "role": invitation.role},
        )
        # An administrator's explicit act: a removal no longer keeps them out.
        await forget_removal(self.session, organization_id, user.id, user.email)
        members = MembershipService(session=self.session)
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


class TenantInvitations:
    """The invitations of the request's organization, sent by the request's caller: what the
    tenant routes use. The rules stay in `InvitationService`; this binds its organization,
    acting member, audit actor and the configured lifetime of a ticket once."""

    def __init__(
        self, service: InvitationService, caller: Caller, *, ttl: datetime.timedelta
    ) -> None:
        self.service = service
        self.caller = caller
        self.ttl = ttl

    @property
    def _organization_id(self) -> UUID:
        return self.caller.organization_id

    async def page(
        self, *, open_only: bool, limit: int, offset: int
    ) -> OffsetPagination[Invitation]:
        return await self.service.page(
            self._organization_id, open_only=open_only, limit=limit, offset=offset
        )

    async def sync_of(self, invitations: list[Invitation]) -> dict[UUID, SyncState]:
        return await self.service.sync_of(self._organization_id, invitations)

    async def invite(self, email: str, role: Role | str) -> tuple[Invitation, str]:
        return await self.service.invite(
            organization_id=self._organization_id,
            email=email,
            role=role,
            actor=self.caller.actor,
            authority=self.caller.authority,
            ttl=self.ttl,
        )

    async def invite_many(
        self, emails: list[str], role: Role | str
    ) -> list[tuple[Invitation, str]]:
        return await self.service.invite_many(
            organization_id=self._organization_id,
            emails=emails,
            role=role,
            actor=self.caller.actor,
            authority=self.caller.authority,
            ttl=self.ttl,
        )

    async def resend(self, invitation_id: UUID) -> tuple[Invitation, str]:
        return await self.service.resend(
            organization_id=self._organization_id,
            invitation_id=invitation_id,
            actor=self.caller.actor,
            ttl=self.ttl,
            authority=self.caller.authority,
        )

    async def revoke(self, invitation_id: UUID) -> Invitation:
        return await self.service.revoke(
            organization_id=self._organization_id,
            invitation_id=invitation_id,
            actor=self.caller.actor,
            authority=self.caller.authority,
        )
