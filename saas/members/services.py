"""Membership rules live here, so no controller can forget them.

- An admin cannot change or remove an owner, nor grant a role above their own.
- The last owner of an organization can never be removed or demoted, even by racing requests:
  every owner-affecting change takes the organization's lock first, then re-reads.
- Every change writes its audit event in the same transaction.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import func, select

from saas.audit.services import Actor, AuditService
from saas.auth.permissions import Role, outranks_or_equals
from saas.auth0.jobs import sync_member_later
from saas.db.models import Membership, User
from saas.db.search import contains_any
from saas.errors import Conflict, Forbidden, InvalidInput, LastOwnerError, NotFound
from saas.organizations.locks import lock_organization


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(
            f"Unknown role {value!r}; choose one of {allowed}", field="role"
        ) from None


def check_may_grant(actor_role: Role | None, role: Role) -> None:
    """None means the platform itself (seed, operator CLI), which may grant anything."""
    if actor_role is not None and not outranks_or_equals(actor_role, role):
        raise Forbidden(f"You cannot grant the {role} role: it is above your own.", field="role")


MEMBER_SORT_COLUMNS: dict[str, Any] = {
    "name": User.name,
    "email": User.email,
    "role": Membership.role,
    "joined": Membership.created_at,
    "last_login": User.last_login_at,
}


class MembershipRepository(SQLAlchemyAsyncRepository[Membership]):
    model_type = Membership


class MembershipService(SQLAlchemyAsyncRepositoryService[Membership, MembershipRepository]):
    repository_type = MembershipRepository

    @property
    def _audit(self) -> AuditService:
        return AuditService(session=self.repository.session)

    async def find(self, organization_id: UUID, user_id: UUID) -> Membership | None:
        return await self.repository.get_one_or_none(
            organization_id=organization_id, user_id=user_id
        )

    async def _get_in_org(self, organization_id: UUID, membership_id: UUID) -> Membership:
        # Always filtered by organization: an id from another tenant is simply not found.
        membership = await self.repository.get_one_or_none(
            id=membership_id, organization_id=organization_id
        )
        if membership is None:
            raise NotFound("No such member in this organization.")
        return membership

    async def page(
        self,
        organization_id: UUID,
        *,
        search: str | None = None,
        sort: str = "name",
        descending: bool = False,
        limit: int = 25,
        offset: int = 0,
    ) -> tuple[list[tuple[Membership, User]], int]:
        """One organization's members with their users, searched, sorted and paginated.

        Two statements whatever the page: the count, then the page. Without a search the count
        reads `memberships` alone (an index-only scan), not the join. A page in the second half
        is read from the other end in reverse order (same rows, same order once flipped back),
        so the last page costs what the first does instead of skipping `offset` sorted rows.
        """
        statement = (
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.organization_id == organization_id)
        )
        if search:
            statement = statement.where(contains_any([User.name, User.email], search.strip()))
            counted = select(func.count()).select_from(statement.subquery())
        else:
            counted = select(func.count()).where(Membership.organization_id == organization_id)
        column = MEMBER_SORT_COLUMNS.get(sort, MEMBER_SORT_COLUMNS["name"])
        total = int(await self.repository.session.scalar(counted) or 0)
        if offset >= total:
            return [], total
        # Membership.id breaks ties, so the order is total and reversing it is exact.
        forward = (column.desc() if descending else column.asc(), Membership.id.asc())
        backward = (column.asc() if descending else column.desc(), Membership.id.desc())
        from_end = total - offset - limit
        if from_end < offset:
            page = statement.order_by(*backward).limit(limit + min(from_end, 0))
            rows = await self.repository.session.execute(page.offset(max(from_end, 0)))
            found = [(membership, user) for membership, user in rows.tuples()]
            return found[::-1], total
        rows = await self.repository.session.execute(
            statement.order_by(*forward).limit(limit).offset(offset)
        )
        return [(membership, user) for membership, user in rows.tuples()], total

    async def count_owners(self, organization_id: UUID) -> int:
        stmt = select(func.count()).where(
            Membership.organization_id == organization_id, Membership.role == Role.OWNER.value
        )
        return int((await self.repository.session.execute(stmt)).scalar_one())

    async def add(
        self,
        *,
        organization_id: UUID,
        user_id: UUID,
        role: Role | str,
        actor: Actor,
        actor_role: Role | None = None,
        via: str = "direct",
    ) -> Membership:
        role = parse_role(role)
        check_may_grant(actor_role, role)
        if await self.find(organization_id, user_id) is not None:
            raise Conflict("This user is already a member of the organization.")
        membership = await self.repository.add(
            Membership(organization_id=organization_id, user_id=user_id, role=role.value),
            auto_commit=False,
        )
        sync_member_later(self.repository.session, organization_id, user_id)
        await self._audit.record(
            "member.added",
            actor=actor,
            organization_id=organization_id,
            target_type="user",
            target_id=user_id,
            details={"role": role.value, "via": via},
        )
        return membership

    async def change_role(
        self,
        *,
        organization_id: UUID,
        membership_id: UUID,
        role: Role | str,
        actor: Actor,
        actor_role: Role | None = None,
    ) -> Membership:
        new_role = parse_role(role)
        check_may_grant(actor_role, new_role)
        await lock_organization(self.repository.session, organization_id)
        membership = await self._get_in_org(organization_id, membership_id)
        await self.repository.session.refresh(membership)
        old_role = Role(membership.role)
        if old_role == new_role:
            return membership
        if old_role == Role.OWNER and actor_role not in (None, Role.OWNER):
            raise Forbidden("Only an owner can change another owner's role.")
        if old_role == Role.OWNER and await self.count_owners(organization_id) <= 1:
            raise LastOwnerError
        membership.role = new_role.value
        membership = await self.repository.update(membership, auto_commit=False)
        sync_member_later(self.repository.session, organization_id, membership.user_id)
        await self._audit.record(
            "member.role_changed",
            actor=actor,
            organization_id=organization_id,
            target_type="user",
            target_id=membership.user_id,
            details={"from": old_role.value, "to": new_role.value},
        )
        return membership

    async def remove(
        self,
        *,
        organization_id: UUID,
        membership_id: UUID,
        actor: Actor,
        actor_role: Role | None = None,
        action: str = "member.removed",
    ) -> Membership:
        await lock_organization(self.repository.session, organization_id)
        membership = await self._get_in_org(organization_id, membership_id)
        await self.repository.session.refresh(membership)
        if membership.role == Role.OWNER and actor_role not in (None, Role.OWNER):
            raise Forbidden("Only an owner can remove another owner.")
        if membership.role == Role.OWNER and await self.count_owners(organization_id) <= 1:
            raise LastOwnerError
        await self.repository.delete(membership.id, auto_commit=False)
        sync_member_later(self.repository.session, organization_id, membership.user_id)
        await self._audit.record(
            action,
            actor=actor,
            organization_id=organization_id,
            target_type="user",
            target_id=membership.user_id,
            details={"role": membership.role},
        )
        return membership

    async def leave(self, *, organization_id: UUID, user_id: UUID, actor: Actor) -> Membership:
        """The member leaves on their own. Same rules as `remove()` (the last owner cannot)."""
        membership = await self.find(organization_id, user_id)
        if membership is None:
            raise NotFound("You are not a member of this organization.")
        return await self.remove(
            organization_id=organization_id,
            membership_id=membership.id,
            actor=actor,
            actor_role=Role(membership.role),
            action="member.left",
        )

    async def transfer_ownership(
        self, *, organization_id: UUID, membership_id: UUID, actor: Actor
    ) -> tuple[Membership, Membership]:
        """Make another member owner and demote the acting owner to admin, in one transaction.

        Returns (new owner, former owner). The organization never has zero owners: the new
        owner is promoted before the actor is demoted, under the organization's lock.
        """
        if actor.user_id is None:
            raise Forbidden("Only an owner can transfer ownership.")
        await lock_organization(self.repository.session, organization_id)
        current = await self.find(organization_id, actor.user_id)
        if current is None:
            raise Forbidden("Only an owner can transfer ownership.")
        await self.repository.session.refresh(current)
        if current.role != Role.OWNER:
            raise Forbidden("Only an owner can transfer ownership.")
        target = await self._get_in_org(organization_id, membership_id)
        await self.repository.session.refresh(target)
        if target.id == current.id:
            raise InvalidInput("Choose another member to transfer ownership to.", field="member")
        previous_role = target.role
        target.role = Role.OWNER.value
        target = await self.repository.update(target, auto_commit=False)
        current.role = Role.ADMIN.value
        current = await self.repository.update(current, auto_commit=False)
        sync_member_later(self.repository.session, organization_id, target.user_id)
        sync_member_later(self.repository.session, organization_id, current.user_id)
        await self._audit.record(
            "ownership.transferred",
            actor=actor,
            organization_id=organization_id,
            target_type="user",
            target_id=target.user_id,
            details={
                "from_user_id": str(current.user_id),
                "previous_role": previous_role,
                "former_owner_role": Role.ADMIN.value,
            },
        )
        return target, current

    async def member_emails(self, organization_id: UUID, emails: list[str]) -> set[str]:
        """Which of these (normalized) addresses already belong to members: one query."""
        if not emails:
            return set()
        stmt = (
            select(User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.organization_id == organization_id, User.email.in_(emails))
        )
        return set((await self.repository.session.execute(stmt)).scalars())
