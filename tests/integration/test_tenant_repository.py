"""`TenantScopedRepository` is total: no public method of the repository built for one
organization reads, changes, moves or deletes another organization's rows. On both backends,
for every tenant table's repository.

The first test reads the installed Advanced Alchemy: a public method it does not know (scoped
by an override, or named as touching no rows) fails it, so an upgrade cannot add an unscoped
way in unnoticed.
"""

from __future__ import annotations

import datetime
import inspect
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from advanced_alchemy.exceptions import AdvancedAlchemyError, NotFoundError
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import func, select
from sqlalchemy import inspect as inspect_model
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from saas.audit.services import Actor, AuditEventRepository
from saas.db.lists import offset_page
from saas.db.models import (
    AuditEvent,
    EnterpriseConnection,
    Invitation,
    Membership,
    OrganizationDomain,
    Project,
    User,
)
from saas.db.tenant_repository import ROW_FREE_METHODS, TenantScopedRepository, TenantScopeError
from saas.invitations.services import InvitationRepository
from saas.members.services import MembershipRepository
from saas.organizations.services import (
    ConnectionRepository,
    DomainRepository,
    OrganizationService,
)
from saas.projects.services import ProjectRepository

SYSTEM = Actor.system()


def public_members(cls: type) -> dict[str, object]:
    """Public methods and properties (not plain class-level settings) of `cls`, inherited too."""
    found: dict[str, object] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        member = inspect.getattr_static(cls, name)
        if isinstance(member, staticmethod | classmethod | property) or inspect.isfunction(member):
            found[name] = member
    return found


def test_every_public_method_of_the_base_repository_is_scoped_or_row_free() -> None:
    base = public_members(SQLAlchemyAsyncRepository)
    assert {"delete_many", "update_many", "upsert_many", "get_one_or_none"} <= set(base)
    scoped = set(vars(TenantScopedRepository)) & set(base)
    unknown = sorted(set(base) - scoped - ROW_FREE_METHODS)
    assert unknown == [], f"TenantScopedRepository does not know {unknown}: scope or refuse them"
    # Neither list is stale: each names a method the library has, and none is both.
    assert set(base) >= ROW_FREE_METHODS
    assert not (ROW_FREE_METHODS & scoped)


TENANT_REPOSITORIES: tuple[type[TenantScopedRepository[Any]], ...] = (
    ProjectRepository,
    MembershipRepository,
    InvitationRepository,
    AuditEventRepository,
    DomainRepository,
    ConnectionRepository,
)


def test_every_tenant_table_has_a_scoped_repository_that_reopens_nothing() -> None:
    tenant_tables = {
        model
        for model in (
            Project,
            Membership,
            Invitation,
            AuditEvent,
            OrganizationDomain,
            EnterpriseConnection,
        )
    }
    assert {repo.model_type for repo in TENANT_REPOSITORIES} == tenant_tables
    base = set(public_members(SQLAlchemyAsyncRepository))
    for repository in TENANT_REPOSITORIES:
        assert issubclass(repository, TenantScopedRepository)
        # A subclass that overrode a base method would bypass the scoped one.
        assert not (set(vars(repository)) & base), repository


# ---- behaviour: another organization's rows through every method ---------------------------


@dataclass(frozen=True)
class Table:
    repository: type[TenantScopedRepository[Any]]
    # A new row (not yet added) for the organization, and the attribute the tests change.
    make: Callable[[AsyncSession, uuid.UUID], Awaitable[Any]]
    field: str


def _unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def _user(session: AsyncSession) -> User:
    user = User(sub=f"auth0|{_unique('u')}", email=f"{_unique('u')}@example.org")
    session.add(user)
    await session.flush()
    return user


async def _project(session: AsyncSession, org_id: uuid.UUID) -> Project:
    return Project(organization_id=org_id, name=_unique("project"))


async def _membership(session: AsyncSession, org_id: uuid.UUID) -> Membership:
    return Membership(organization_id=org_id, user_id=(await _user(session)).id, role="member")


async def _invitation(session: AsyncSession, org_id: uuid.UUID) -> Invitation:
    return Invitation(
        organization_id=org_id,
        email=f"{_unique('i')}@example.org",
        role="member",
        token_hash=secrets.token_hex(32),
        expires_at=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1),
    )


async def _event(session: AsyncSession, org_id: uuid.UUID) -> AuditEvent:
    return AuditEvent(organization_id=org_id, action=_unique("test.action"), details={})


async def _domain(session: AsyncSession, org_id: uuid.UUID) -> OrganizationDomain:
    return OrganizationDomain(
        organization_id=org_id, domain=f"{_unique('d')}.example", verification_token="t"
    )


async def _connection(session: AsyncSession, org_id: uuid.UUID) -> EnterpriseConnection:
    return EnterpriseConnection(
        organization_id=org_id,
        auth0_connection_name=_unique("conn"),
        strategy="samlp",
        display_name=_unique("name"),
    )


TABLES = {
    "projects": Table(ProjectRepository, _project, "name"),
    "memberships": Table(MembershipRepository, _membership, "role"),
    "invitations": Table(InvitationRepository, _invitation, "role"),
    "audit_events": Table(AuditEventRepository, _event, "action"),
    "domains": Table(DomainRepository, _domain, "verification_token"),
    "connections": Table(ConnectionRepository, _connection, "display_name"),
}


class Tenants:
    """Two organizations with one row each, and a repository scoped to the first."""

    def __init__(self, session: AsyncSession, table: Table) -> None:
        self.session = session
        self.table = table
        self.model = table.repository.model_type

    async def setup(self) -> Tenants:
        orgs = OrganizationService(session=self.session)
        self.a = await orgs.create_organization(slug=_unique("a"), display_name="A", actor=SYSTEM)
        self.b = await orgs.create_organization(slug=_unique("b"), display_name="B", actor=SYSTEM)
        self.mine = await self.new(self.a.id)
        self.theirs = await self.new(self.b.id)
        self.theirs_id = self.theirs.id
        self.theirs_value = getattr(self.theirs, self.table.field)
        await self.session.commit()
        # Not in this session's identity map: only the database can refuse a clash with it.
        self.session.expunge(self.theirs)
        # What A owns (creating an organization audits it, so audit events have one more).
        self.own = set(
            await self.session.scalars(
                select(self.model.id).where(self.model.organization_id == self.a.id)
            )
        )
        self.repo = self.table.repository(session=self.session, organization_id=self.a.id)
        return self

    async def new(self, org_id: uuid.UUID, *, add: bool = True) -> Any:
        row = await self.table.make(self.session, org_id)
        if add:
            self.session.add(row)
            await self.session.flush()
        return row

    def other_value(self) -> str:
        return "admin" if self.table.field == "role" else _unique("changed")

    async def attempt(self, call: Awaitable[Any]) -> Any:
        """Run a call that must not touch B's row; a refusal is fine, and rolls back."""
        try:
            async with self.session.begin_nested():
                return await call
        except (NotFoundError, TenantScopeError, AdvancedAlchemyError):
            return None

    async def theirs_untouched(self, factory: async_sessionmaker[AsyncSession]) -> None:
        await self.session.commit()
        async with factory() as fresh:
            row = await fresh.get(self.model, self.theirs_id)
            assert row is not None, "another organization's row was deleted"
            assert row.organization_id == self.b.id, "another organization's row was moved"
            assert getattr(row, self.table.field) == self.theirs_value, "and changed"


@pytest.fixture(params=sorted(TABLES))
def table(request: pytest.FixtureRequest) -> Table:
    return TABLES[request.param]


@pytest.mark.filterwarnings("ignore:Call to deprecated method:DeprecationWarning")
async def test_reads_never_see_another_organization(session: AsyncSession, table: Table) -> None:
    t = await Tenants(session, table).setup()
    model, repo, theirs = t.model, t.repo, t.theirs_id
    everything = select(model)
    with pytest.raises(NotFoundError):
        await repo.get(theirs)
    with pytest.raises(NotFoundError):
        await repo.get(theirs, statement=everything)
    with pytest.raises(NotFoundError):
        await repo.get_one(id=theirs)
    assert await repo.get_one_or_none(id=theirs) is None
    assert await repo.get_one_or_none(model.id == theirs, statement=everything) is None
    assert await repo.exists(id=theirs) is False
    assert t.mine.id in t.own
    assert await repo.count() == len(t.own)
    assert await repo.count(statement=everything) == len(t.own)
    assert await repo.count(organization_id=t.b.id) == 0
    for rows in (
        await repo.get_many(),
        await repo.list(),
        await repo.list(statement=everything),
        (await repo.get_many_and_count())[0],
        (await repo.list_and_count(statement=everything))[0],
    ):
        assert {row.id for row in rows} == t.own
    assert (await repo.list_and_count())[1] == len(t.own)
    # The offset lists' way (saas/db/lists.py): filters, a page, and a count of its own.
    page = await offset_page(repo, OrderBy(model.id), limit=1000, offset=0)
    assert ({row.id for row in page.items}, page.total) == (t.own, len(t.own))
    rows, total = await repo.get_many_and_count(
        LimitOffset(limit=1000, offset=0), statement=everything, count_with_window_function=False
    )
    assert ({row.id for row in rows}, total) == (t.own, len(t.own))
    # Whoever assigns the repository's statement gets it scoped again.
    repo.statement = everything
    assert {row.id for row in await repo.list()} == t.own


async def test_writes_never_reach_another_organization(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession], table: Table
) -> None:
    t = await Tenants(session, table).setup()
    model, repo, theirs, field = t.model, t.repo, t.theirs_id, table.field
    value = t.other_value()

    def foreign_copy(**changes: Any) -> Any:
        return model(id=theirs, **{field: value}, **changes)

    await t.attempt(repo.update(foreign_copy()))
    await t.attempt(repo.update(foreign_copy(organization_id=t.b.id)))
    await t.attempt(repo.update_many([foreign_copy()]))
    await t.attempt(repo.update_many([{"id": theirs, field: value}]))
    await t.attempt(repo.upsert(foreign_copy()))
    await t.attempt(repo.upsert(foreign_copy(organization_id=t.b.id)))
    await t.attempt(repo.upsert_many([foreign_copy()]))
    await t.attempt(repo.get_or_upsert(id=theirs, **{field: value}))
    await t.attempt(repo.get_or_upsert(id=theirs, organization_id=t.b.id))
    await t.attempt(repo.get_and_update(id=theirs, **{field: value}))
    await t.attempt(repo.delete(theirs))
    await t.attempt(repo.delete_many([theirs]))
    await t.attempt(repo.delete_where(model.id == theirs))
    await t.attempt(repo.delete_where(id=theirs))
    await t.theirs_untouched(session_factory)


async def test_own_rows_cannot_be_moved_or_added_to_another_organization(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession], table: Table
) -> None:
    t = await Tenants(session, table).setup()
    repo, a, b, mine = t.repo, t.a.id, t.b.id, t.mine.id
    with pytest.raises(TenantScopeError):
        await repo.add(await t.new(b, add=False))
    with pytest.raises(TenantScopeError):
        await repo.add_many([await t.new(b, add=False)])
    with pytest.raises(TenantScopeError):
        await repo.get_or_upsert(id=mine, organization_id=b)
    with pytest.raises(TenantScopeError):
        await repo.get_and_update(id=mine, organization_id=b)
    t.mine.organization_id = b
    with pytest.raises(TenantScopeError):
        await repo.update(t.mine)
    with pytest.raises(TenantScopeError):
        await repo.upsert(t.mine)
    await session.rollback()
    async with session_factory() as fresh:
        assert await fresh.scalar(select(t.model.organization_id).where(t.model.id == mine)) == a


async def test_scoped_writes_still_work_for_own_rows(session: AsyncSession, table: Table) -> None:
    """The scoped bulk paths are real implementations, not refusals."""
    t = await Tenants(session, table).setup()
    repo, field = t.repo, table.field
    value = t.other_value()
    setattr(t.mine, field, value)
    (updated,) = await repo.update_many([t.mine])
    assert getattr(updated, field) == value
    unstamped = await t.new(t.a.id, add=False)
    unstamped.organization_id = None
    added = await repo.add(unstamped)
    assert added.organization_id == t.a.id
    assert len(await repo.upsert_many([added])) == 1
    deleted = await repo.delete_many([t.mine.id, added.id, t.theirs_id])
    assert {row.id for row in deleted} == {t.mine.id, added.id}
    assert await repo.count() == len(t.own) - 1


# ---- the organization named by a relationship, aliases, and the flush's own check --------

RELATED_TABLES = sorted(
    name
    for name, table in TABLES.items()
    if "organization" in inspect_model(table.repository.model_type).relationships
)


@pytest.fixture(params=RELATED_TABLES)
def related_table(request: pytest.FixtureRequest) -> Table:
    return TABLES[request.param]


async def test_a_related_organization_cannot_take_rows_to_another_organization(
    session: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
    related_table: Table,
) -> None:
    """`organization=<B>` is copied into organization_id by the flush, over the stamp: every
    way of writing a row through A's repository refuses it, and nothing lands in B."""
    t = await Tenants(session, related_table).setup()
    repo, a, b, mine = t.repo, t.a.id, t.b.id, t.mine.id

    async def related_to_b(organization_id: uuid.UUID | None = None) -> Any:
        row = await t.new(a, add=False)
        row.organization_id = organization_id
        row.organization = t.b
        return row

    async def in_savepoint(write: Callable[[], Awaitable[Any]]) -> None:
        async with session.begin_nested():
            await write()
            await session.flush()

    async def refused(write: Callable[[], Awaitable[Any]]) -> None:
        with pytest.raises(TenantScopeError):
            await in_savepoint(write)

    async def move_mine() -> Any:
        t.mine.organization = t.b
        return await repo.update(t.mine)

    # Unset (stamped with A), or A's id: either way the relationship would win at flush.
    await refused(lambda: _then(related_to_b(), repo.add))
    await refused(lambda: _then(related_to_b(a), repo.add))
    await refused(lambda: _then(related_to_b(), lambda row: repo.add_many([row])))
    await refused(lambda: _then(related_to_b(), repo.upsert))
    await refused(lambda: repo.get_or_upsert(id=mine, organization=t.b))
    await refused(lambda: repo.get_and_update(id=mine, organization=t.b))
    await refused(move_mine)
    await session.rollback()
    async with session_factory() as fresh:
        in_b = select(func.count()).select_from(t.model).where(t.model.organization_id == b)
        assert await fresh.scalar(in_b) == 1, "a row was written to B through A's repository"
        assert await fresh.scalar(select(t.model.organization_id).where(t.model.id == mine)) == a


async def _then(made: Awaitable[Any], write: Callable[[Any], Awaitable[Any]]) -> Any:
    return await write(await made)


async def test_no_row_of_a_scoped_table_moves_at_flush(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession], table: Table
) -> None:
    """However organization_id is changed (here on the instance, past every repository
    method), the flush refuses to move the row."""
    t = await Tenants(session, table).setup()
    a, mine = t.a.id, t.mine.id
    t.mine.organization_id = t.b.id
    with pytest.raises(TenantScopeError):
        await session.flush()
    await session.rollback()
    async with session_factory() as fresh:
        assert await fresh.scalar(select(t.model.organization_id).where(t.model.id == mine)) == a


@pytest.mark.filterwarnings("ignore:Call to deprecated method:DeprecationWarning")
async def test_a_statement_over_an_alias_is_refused(session: AsyncSession, table: Table) -> None:
    """The scope filters the model's own table: an alias of it would be cross-joined with the
    filtered table and return every organization's rows."""
    t = await Tenants(session, table).setup()
    alias = aliased(t.model)
    for read in (t.repo.list, t.repo.get_many, t.repo.count, t.repo.list_and_count):
        with pytest.raises(TenantScopeError):
            await read(statement=select(alias))
    with pytest.raises(TenantScopeError):
        t.repo.statement = select(alias)
