"""Membership rules live here, so no controller can forget them.

- An admin cannot change or remove an owner, nor grant a role above their own: the rule itself
  is `saas.tenancy.policy`, asked here with the roles read inside the write's transaction.
- The last owner of an organization can never be removed or demoted, even by racing requests:
  every owner-affecting change takes the organization's lock first, then re-reads.
- Every change writes its audit event in the same transaction.
- A member's change re-reads the actor's own role inside that transaction, under the same lock
  (saas/tenancy/authority.py): a role lost while the request was arriving is not used.
- Every read and write of memberships goes through a repository scoped to one organization.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.audit.actions import AuditAction
from saas.audit.services import Actor, AuditService
from saas.auth0.jobs import MEMBER_TARGET, sync_member_later
from saas.auth0.sync_state import SyncState, sync_states
from saas.db.keyset import Cursor, SortKey
from saas.db.lists import text_search
from saas.db.models import (
    DirectoryGroup,
    DirectoryGroupMember,
    DirectoryUser,
    Membership,
    Organization,
    User,
)
from saas.db.tenant_repository import TenantScopedRepository
from saas.errors import Conflict, Forbidden, InvalidInput, LastOwnerError, NotFound
from saas.login.session_ending import end_sessions_on_commit
from saas.members.removals import record_removal, withdraw_open_invitations
from saas.tenancy.authority import ActingMember, acting_role, require_permission_in_txn
from saas.tenancy.caller import Caller
from saas.tenancy.permissions import Permission, Role
from saas.tenancy.policy import check_may_grant, removal_refusal, role_change_refusal


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(
            f"Unknown role {value!r}; choose one of {allowed}", field="role"
        ) from None


class MembershipFields(Protocol):
    """What a member list shows of a membership: a `Membership` or a `ListedMembership`."""

    @property
    def id(self) -> UUID: ...
    @property
    def organization_id(self) -> UUID: ...
    @property
    def user_id(self) -> UUID: ...
    @property
    def role(self) -> str: ...
    @property
    def directory_managed(self) -> bool: ...
    @property
    def created_at(self) -> datetime.datetime: ...


class UserFields(Protocol):
    """What a member list shows of a user: a `User` or a `ListedUser`."""

    @property
    def id(self) -> UUID: ...
    @property
    def sub(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def picture(self) -> str | None: ...
    @property
    def last_login_at(self) -> datetime.datetime | None: ...


# A page of members is only read and rendered: plain values, not ORM entities (an identity map
# entry and an instance state per row cost more than the rest of the page's SQL work).
@dataclass(frozen=True, slots=True)
class ListedMembership:
    id: UUID
    organization_id: UUID
    user_id: UUID
    role: str
    directory_managed: bool
    created_at: datetime.datetime


@dataclass(frozen=True, slots=True)
class ListedUser:
    id: UUID
    sub: str
    email: str
    name: str
    picture: str | None
    last_login_at: datetime.datetime | None


# The columns a page reads, in the order of the two classes' fields.
_LISTED_COLUMNS = (
    Membership.id,
    Membership.organization_id,
    Membership.user_id,
    Membership.role,
    Membership.directory_managed,
    Membership.created_at,
    User.id,
    User.sub,
    User.email,
    User.name,
    User.picture,
    User.last_login_at,
)
_MEMBERSHIP_WIDTH = 6

ListedMember = tuple[ListedMembership, ListedUser]


def _listed(row: Any) -> ListedMember:
    return ListedMembership(*row[:_MEMBERSHIP_WIDTH]), ListedUser(*row[_MEMBERSHIP_WIDTH:])


def _from_user(attribute: str) -> Any:
    return lambda row: (getattr(row[1], attribute), row[1].id)


def _from_membership(attribute: str) -> Any:
    return lambda row: (getattr(row[0], attribute), row[0].id)


# Each sort is served by an index ending in its tie-breaker (see the models): a user's id is
# unique within one organization's member list, as is the membership's.
MEMBER_SORT_KEYS: dict[str, SortKey] = {
    "name": SortKey(User.name, User.id, _from_user("name")),
    "email": SortKey(User.email, User.id, _from_user("email")),
    "role": SortKey(Membership.role, Membership.id, _from_membership("role")),
    "joined": SortKey(Membership.created_at, Membership.id, _from_membership("created_at")),
    "last_login": SortKey(User.last_login_at, User.id, _from_user("last_login_at"), nullable=True),
}
# Counting a search's matches stops here ("5,000+ matches"). The count also picks the page's
# plan: up to this many matches are fetched through the trigram index and sorted (cost grows with
# the matches, at most a few tens of ms); beyond it, matches are dense enough that walking the
# sort order finds a page quickly. Without the switch a first name matching 2% of a 100,000-member
# organization, all together in name order, walked ~60,000 rows (150 ms) per page.
MATCH_COUNT_CAP = 5000


# What a person is told when they would hand-edit what the organization's directory owns.
DIRECTORY_ROLE = (
    "This member's role comes from the directory group “{group}”: change their groups in your "
    "identity provider, or the group's role on the Directory sync page."
)
DIRECTORY_REMOVAL = (
    "This member was provisioned by your directory (SCIM): remove or deactivate them in your "
    "identity provider, which removes them here too. A removal made here would not last."
)


class PageStart(enum.StrEnum):
    FIRST = "first"
    AFTER = "after"  # the rows after a cursor: "next"
    BEFORE = "before"  # the rows before a cursor: "previous"
    LAST = "last"


@dataclass
class MemberPage:
    rows: list[ListedMember]
    start: PageStart
    # Set only where there is a page that way: the cursor of the first / last row.
    previous_cursor: Cursor | None
    next_cursor: Cursor | None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None


class MembershipRepository(TenantScopedRepository[Membership]):
    model_type = Membership


class MembershipService:
    """Every method names its organization and works through a repository scoped to it."""

    def __init__(self, *, session: AsyncSession | async_scoped_session[AsyncSession]) -> None:
        self.session = session

    def repository_for(self, organization_id: UUID) -> MembershipRepository:
        return MembershipRepository(session=self.session, organization_id=organization_id)

    @property
    def _audit(self) -> AuditService:
        return AuditService(session=self.session)

    async def sync_of(self, organization_id: UUID, user_ids: list[UUID]) -> dict[UUID, SyncState]:
        """Whether Auth0 has each member's role as it is here, by user id (member jobs name
        the user), from the outbox in one query (no Auth0 call)."""
        return await sync_states(self.session, organization_id, MEMBER_TARGET, user_ids)

    async def find(self, organization_id: UUID, user_id: UUID) -> Membership | None:
        return await self.repository_for(organization_id).get_one_or_none(user_id=user_id)

    async def find_by_id(self, organization_id: UUID, membership_id: UUID) -> Membership | None:
        # An id from another tenant is simply not found.
        return await self.repository_for(organization_id).get_one_or_none(id=membership_id)

    async def _get_in_org(self, organization_id: UUID, membership_id: UUID) -> Membership:
        membership = await self.find_by_id(organization_id, membership_id)
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
        start: PageStart = PageStart.FIRST,
        cursor: Cursor | None = None,
        search_matches: int | None = None,
    ) -> MemberPage:
        """One page of an organization's members with their users, searched and sorted.

        Keyset pagination (saas/db/keyset.py): the first page, the page after or before a
        cursor, or the last page, each read by seeking an index, so page depth and organization
        size cost nothing. One statement, two when a nullable sort column's page spans the NULL
        block. Raises `InvalidCursor` for a cursor made for another sort.

        `search_matches` (from `count_matches`) picks the plan for a search: a few matches are
        fetched through the trigram index and sorted; many are found by walking the sort order,
        where they are dense enough to fill a page quickly.
        """
        key = MEMBER_SORT_KEYS[sort]
        if (cursor is None) != (start in (PageStart.FIRST, PageStart.LAST)):
            raise ValueError(f"a {start} page takes {'a' if cursor is None else 'no'} cursor")
        if cursor is not None:
            key.check(cursor, sort, descending)
        few_matches = search_matches is not None and search_matches <= MATCH_COUNT_CAP
        rows_of = self._member_rows(organization_id, search).with_only_columns(*_LISTED_COLUMNS)
        use_index = not (search and few_matches)
        while True:
            # "before" and "last" read backwards from their edge, then flip the rows.
            backwards = start in (PageStart.BEFORE, PageStart.LAST)
            order_descending = descending != backwards
            statement = rows_of.order_by(*key.order_by(order_descending, use_index=use_index))
            ranges = key.after(cursor, order_descending) if cursor is not None else [None]
            found: list[ListedMember] = []
            for where in ranges:
                bounded = statement if where is None else statement.where(where)
                result = await self.session.execute(bounded.limit(limit + 1 - len(found)))
                found.extend(_listed(row) for row in result)
                if len(found) > limit:
                    break
            more = len(found) > limit
            # Past the end (the list shrank since the link was made): the last page instead.
            # Back at the start with a short page: the first page, full. Either restarts once:
            # neither the last nor the first page restarts again.
            if start == PageStart.AFTER and not found:
                start, cursor = PageStart.LAST, None
            elif start == PageStart.BEFORE and not more and len(found) < limit:
                start, cursor = PageStart.FIRST, None
            else:
                break
        rows = found[:limit][::-1] if backwards else found[:limit]
        has_previous = bool(rows) and (more if backwards else start == PageStart.AFTER)
        has_next = bool(rows) and (more if not backwards else start == PageStart.BEFORE)
        return MemberPage(
            rows=rows,
            start=start,
            previous_cursor=key.cursor(sort, descending, rows[0]) if has_previous else None,
            next_cursor=key.cursor(sort, descending, rows[-1]) if has_next else None,
        )

    async def listing(
        self,
        organization: Organization,
        *,
        search: str | None,
        sort: str,
        descending: bool,
        limit: int,
        start: PageStart = PageStart.FIRST,
        cursor: Cursor | None = None,
    ) -> tuple[MemberPage, int]:
        """A page and its total, for the dashboard and the API: the organization's member
        count, or (searching) the matches counted first, which also choose the page's plan.
        A bad cursor raises `InvalidCursor` before any query runs."""
        if cursor is not None:
            MEMBER_SORT_KEYS[sort].check(cursor, sort, descending)
        total = (
            await self.count_matches(organization.id, search)
            if search
            else organization.member_count
        )
        page = await self.page(
            organization.id,
            search=search,
            sort=sort,
            descending=descending,
            limit=limit,
            start=start,
            cursor=cursor,
            search_matches=total if search else None,
        )
        return page, total

    async def count_matches(self, organization_id: UUID, search: str) -> int:
        """How many members a search matches, counted up to `MATCH_COUNT_CAP + 1`."""
        matching = (
            self._member_rows(organization_id, search)
            .with_only_columns(Membership.id)
            .limit(MATCH_COUNT_CAP + 1)
        )
        counted = select(func.count()).select_from(matching.subquery())
        return int(await self.session.scalar(counted) or 0)

    def _member_rows(
        self, organization_id: UUID, search: str | None
    ) -> Select[tuple[Membership, User]]:
        statement = (
            self.repository_for(organization_id)
            .statement.add_columns(User)
            .join(User, User.id == Membership.user_id)
        )
        if search and search.strip():
            statement = text_search({"name", "email"}, search.strip()).append_to_statement(
                statement, User
            )
        return statement

    async def _count_member(self, organization_id: UUID, change: int) -> None:
        # Atomic in the database (`member_count + 1`), so concurrent joins cannot lose a count;
        # in the same transaction as the membership row it counts.
        await self.session.execute(
            update(Organization)
            .where(Organization.id == organization_id)
            .values(member_count=Organization.member_count + change)
        )

    async def _manager_role(
        self, organization_id: UUID, authority: ActingMember | None
    ) -> Role | None:
        """The acting member's role, re-read with members:manage under the organization's lock
        (taken first: every owner-affecting change is serialized by it)."""
        return await acting_role(
            self.session,
            organization_id,
            authority,
            Permission.MEMBERS_MANAGE,
            lock_organization=True,
        )

    async def directory_group_of(self, organization_id: UUID, user_id: UUID) -> str | None:
        """The name of a mapped directory group that sets this member's role, if any."""
        statement = (
            select(DirectoryGroup.display_name)
            .join(DirectoryGroupMember, DirectoryGroupMember.group_id == DirectoryGroup.id)
            .join(DirectoryUser, DirectoryUser.id == DirectoryGroupMember.directory_user_id)
            .where(
                DirectoryGroup.organization_id == organization_id,
                DirectoryGroup.role.is_not(None),
                DirectoryUser.user_id == user_id,
            )
            .order_by(DirectoryGroup.display_name_key)
            .limit(1)
        )
        return await self.session.scalar(statement)

    async def directory_groups_of(
        self, organization_id: UUID, user_ids: list[UUID]
    ) -> dict[UUID, str]:
        """For a page of members: the mapped directory group that sets each one's role, by
        user id (one query)."""
        if not user_ids:
            return {}
        statement = (
            select(DirectoryUser.user_id, DirectoryGroup.display_name)
            .join(DirectoryGroupMember, DirectoryGroupMember.directory_user_id == DirectoryUser.id)
            .join(DirectoryGroup, DirectoryGroup.id == DirectoryGroupMember.group_id)
            .where(
                DirectoryUser.organization_id == organization_id,
                DirectoryUser.user_id.in_(user_ids),
                DirectoryGroup.role.is_not(None),
            )
            .order_by(DirectoryGroup.display_name_key)
        )
        found: dict[UUID, str] = {}
        for user_id, name in (await self.session.execute(statement)).tuples():
            found.setdefault(user_id, name)
        return found

    async def count_owners(self, organization_id: UUID) -> int:
        return await self.repository_for(organization_id).count(Membership.role == Role.OWNER.value)

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
        membership = await self.repository_for(organization_id).add(
            Membership(user_id=user_id, role=role.value),
            auto_commit=False,
        )
        await self._count_member(organization_id, +1)
        sync_member_later(self.session, organization_id, user_id)
        await self._audit.record(
            AuditAction.MEMBER_ADDED,
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
        authority: ActingMember | None = None,
    ) -> Membership:
        new_role = parse_role(role)
        actor_role = await self._manager_role(organization_id, authority)
        membership = await self._get_in_org(organization_id, membership_id)
        await self.session.refresh(membership)
        old_role = Role(membership.role)
        if (refusal := role_change_refusal(actor_role, old_role, new_role)) is not None:
            raise refusal
        if old_role == new_role:
            return membership
        if authority is not None and membership.directory_managed:
            group = await self.directory_group_of(organization_id, membership.user_id)
            if group is not None:
                raise Forbidden(DIRECTORY_ROLE.format(group=group))
        if old_role == Role.OWNER and await self.count_owners(organization_id) <= 1:
            raise LastOwnerError
        membership.role = new_role.value
        membership = await self.repository_for(organization_id).update(
            membership, auto_commit=False
        )
        sync_member_later(self.session, organization_id, membership.user_id)
        await self._audit.record(
            AuditAction.MEMBER_ROLE_CHANGED,
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
        authority: ActingMember | None = None,
    ) -> Membership:
        actor_role = await self._manager_role(organization_id, authority)
        return await self._remove_locked(
            organization_id, membership_id, actor=actor, actor_role=actor_role
        )

    async def _remove_locked(
        self,
        organization_id: UUID,
        membership_id: UUID,
        *,
        actor: Actor,
        actor_role: Role | None,
        leaving: bool = False,
    ) -> Membership:
        """`remove()` once the organization lock is held and the actor's role is known;
        `leaving`: the member removes themselves."""
        membership = await self._get_in_org(organization_id, membership_id)
        await self.session.refresh(membership)
        if (
            refusal := removal_refusal(actor_role, Role(membership.role), leaving=leaving)
        ) is not None:
            raise refusal
        if actor_role is not None and membership.directory_managed and not leaving:
            raise Forbidden(DIRECTORY_REMOVAL)
        if membership.role == Role.OWNER and await self.count_owners(organization_id) <= 1:
            raise LastOwnerError
        await self.repository_for(organization_id).delete(membership.id, auto_commit=False)
        await self._count_member(organization_id, -1)
        sync_member_later(self.session, organization_id, membership.user_id)
        await self._audit.record(
            AuditAction.MEMBER_LEFT if leaving else AuditAction.MEMBER_REMOVED,
            actor=actor,
            organization_id=organization_id,
            target_type="user",
            target_id=membership.user_id,
            details={"role": membership.role},
        )
        if not leaving:  # one who leaves picks another organization in this same session
            # Sticky: just-in-time provisioning must not make them a member again.
            await record_removal(self.session, organization_id, membership.user_id)
            await withdraw_open_invitations(
                self.session, organization_id, membership.user_id, actor=actor
            )
            await end_sessions_on_commit(
                self.session,
                user_ids=[membership.user_id],
                organization_id=organization_id,
                actor=actor,
                reason="removed",
            )
        return membership

    async def leave(self, *, organization_id: UUID, user_id: UUID, actor: Actor) -> Membership:
        """The member leaves on their own. Same rules as `remove()` (the last owner cannot)."""
        membership = await require_permission_in_txn(
            self.session, organization_id, user_id, Permission.MEMBERS_READ, lock_organization=True
        )
        return await self._remove_locked(
            organization_id,
            membership.id,
            actor=actor,
            actor_role=Role(membership.role),
            leaving=True,
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
        current = await require_permission_in_txn(
            self.session,
            organization_id,
            actor.user_id,
            Permission.OWNERSHIP,
            lock_organization=True,
        )
        target = await self._get_in_org(organization_id, membership_id)
        await self.session.refresh(target)
        if target.id == current.id:
            raise InvalidInput("Choose another member to transfer ownership to.", field="member")
        previous_role = target.role
        target.role = Role.OWNER.value
        repository = self.repository_for(organization_id)
        target = await repository.update(target, auto_commit=False)
        current.role = Role.ADMIN.value
        current = await repository.update(current, auto_commit=False)
        sync_member_later(self.session, organization_id, target.user_id)
        sync_member_later(self.session, organization_id, current.user_id)
        await self._audit.record(
            AuditAction.OWNERSHIP_TRANSFERRED,
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
            self.repository_for(organization_id)
            .statement.with_only_columns(User.email, maintain_column_froms=True)
            .join(User, User.id == Membership.user_id)
            .where(User.email.in_(emails))
        )
        return set((await self.session.execute(stmt)).scalars())


class TenantMembers:
    """The members of the request's organization, changed by the request's caller: what the
    tenant routes use. The rules stay in `MembershipService`; this binds its organization,
    acting member and audit actor once, so a handler passes only what the person chose."""

    def __init__(self, service: MembershipService, caller: Caller) -> None:
        self.service = service
        self.caller = caller

    @property
    def _organization_id(self) -> UUID:
        return self.caller.organization_id

    async def find_with_user(self, membership_id: UUID) -> tuple[Membership, User] | None:
        membership = await self.service.find_by_id(self._organization_id, membership_id)
        if membership is None:
            return None
        user = await self.service.session.get(User, membership.user_id)
        return None if user is None else (membership, user)

    async def user_of(self, membership: Membership) -> User:
        # Loaded with the membership already: the identity map answers without a query.
        return await self.service.session.get_one(User, membership.user_id)

    async def name_of(self, membership: Membership) -> str:
        """How the dashboard names the member (loaded with the membership already: the
        identity map answers without a query)."""
        user = await self.service.session.get(User, membership.user_id)
        return (user.name or user.email) if user is not None else "The member"

    async def listing(self, **query: Any) -> tuple[MemberPage, int]:
        return await self.service.listing(self.caller.organization, **query)

    async def sync_of(self, user_ids: list[UUID]) -> dict[UUID, SyncState]:
        return await self.service.sync_of(self._organization_id, user_ids)

    async def directory_groups_of(self, user_ids: list[UUID]) -> dict[UUID, str]:
        return await self.service.directory_groups_of(self._organization_id, user_ids)

    async def change_role(self, membership_id: UUID, role: Role | str) -> Membership:
        return await self.service.change_role(
            organization_id=self._organization_id,
            membership_id=membership_id,
            role=role,
            actor=self.caller.actor,
            authority=self.caller.authority,
        )

    async def remove(self, membership_id: UUID) -> Membership:
        return await self.service.remove(
            organization_id=self._organization_id,
            membership_id=membership_id,
            actor=self.caller.actor,
            authority=self.caller.authority,
        )

    async def transfer_ownership(self, membership_id: UUID) -> tuple[Membership, Membership]:
        return await self.service.transfer_ownership(
            organization_id=self._organization_id,
            membership_id=membership_id,
            actor=self.caller.actor,
        )

    async def leave(self) -> Membership:
        """The caller leaves the organization."""
        if self.caller.actor.user_id is None:
            raise Forbidden("Only a member can leave an organization.")
        return await self.service.leave(
            organization_id=self._organization_id,
            user_id=self.caller.actor.user_id,
            actor=self.caller.actor,
        )
