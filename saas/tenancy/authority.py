"""Authority re-read where the write happens.

Route guards decide on the membership they read before the request body arrives; a request
whose body takes 30 s to arrive would otherwise act on a role its member lost meanwhile. So
every tenant write asks here again, inside its own transaction, and holds what it read until it
commits:

- PostgreSQL: the actor's membership row is read `FOR SHARE`. A removal or role change of that
  member (which writes the row) waits for this transaction, and this read waits for one that
  is in flight, then sees its outcome.
- SQLite: the organization lock (saas/db/locks.py) is taken first. It is a write, so
  it opens the database's single write transaction, and nothing read after it can change
  before this transaction ends.

Rules that span rows (the last owner) also take the organization lock on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.db.locks import lock_organization as take_organization_lock
from saas.db.models import Membership, Organization, OrganizationStatus
from saas.errors import DomainError, Forbidden, NotFound
from saas.tenancy.permissions import Permission, Role, has_permission

Session = AsyncSession | async_scoped_session[AsyncSession]


@dataclass(frozen=True, slots=True)
class ActingMember:
    """A member acting in an organization through a request: who, and for API calls what the
    access token grants. The role is deliberately not here: the write reads it."""

    user_id: UUID
    token_permissions: frozenset[str] | None = None


class AuthorityRefused(DomainError):
    """The actor lost the authority the guard saw. Answered like the guard would have
    answered (an error page or problem), never as an inline form error."""


class NoLongerMember(AuthorityRefused, NotFound):
    def __init__(self) -> None:
        super().__init__("There is nothing here, or you do not have access to it.")


class NotAllowedNow(AuthorityRefused, Forbidden):
    pass


async def open_write(session: Session, organization_id: UUID, *, lock_organization: bool) -> bool:
    """Start the write: on SQLite always with the organization lock, which opens the write
    transaction (and makes a later SAVEPOINT nest inside it rather than start and, when
    released, commit a transaction of its own). Returns whether this is PostgreSQL."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if lock_organization or not postgres:
        await take_organization_lock(session, organization_id)
    return postgres


async def require_permission_in_txn(
    session: Session,
    organization_id: UUID,
    user_id: UUID,
    permission: Permission,
    *,
    token_permissions: frozenset[str] | None = None,
    lock_organization: bool = False,
) -> Membership:
    """The actor's live membership, if it grants `permission`; refuses otherwise.

    Call it first in the write, before anything is read that the decision depends on.
    `lock_organization` also serializes with every other owner-affecting change (the
    last-owner rule) on PostgreSQL; SQLite always takes that lock.
    """
    postgres = await open_write(session, organization_id, lock_organization=lock_organization)
    statement = (
        select(Membership, Organization.status)
        .join(Organization, Organization.id == Membership.organization_id)
        .where(Membership.organization_id == organization_id, Membership.user_id == user_id)
        # The request's guard loaded this membership into the session: read it afresh.
        .execution_options(populate_existing=True)
    )
    if postgres:
        statement = statement.with_for_update(read=True, of=Membership)
    found = (await session.execute(statement)).first()
    if found is None:
        raise NoLongerMember
    membership, status = found
    if status != OrganizationStatus.ACTIVE.value:
        raise NotAllowedNow("This organization is suspended. Contact your administrator.")
    if not has_permission(membership.role, permission) or (
        token_permissions is not None and permission.value not in token_permissions
    ):
        raise NotAllowedNow(f"Your role does not allow this ({permission}).")
    return membership


async def acting_role(
    session: Session,
    organization_id: UUID,
    acting: ActingMember | None,
    permission: Permission,
    *,
    lock_organization: bool = False,
) -> Role | None:
    """The live role `acting` writes with, checked for `permission`. None is the platform
    itself (seed, CLI, operator console), which the member rules do not restrict."""
    if acting is None:
        await open_write(session, organization_id, lock_organization=lock_organization)
        return None
    membership = await require_permission_in_txn(
        session,
        organization_id,
        acting.user_id,
        permission,
        token_permissions=acting.token_permissions,
        lock_organization=lock_organization,
    )
    return Role(membership.role)
