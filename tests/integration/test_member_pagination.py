"""Keyset pagination of member lists, on both backends.

The reference order is the database's own `ORDER BY` read in one go; walking the pages forward
by `next_cursor`, backward by `previous_cursor`, or from the last page must reproduce it exactly,
for every sort and direction, with tied names, tied join times and never-signed-in members
(NULL `last_login_at`). The organization's `member_count` must always equal its rows.
"""

from __future__ import annotations

import datetime
from uuid import UUID

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor
from saas.db.keyset import Cursor, InvalidCursor
from saas.db.models import Membership, Organization, User
from saas.members.services import MEMBER_SORT_KEYS, MembershipService, PageStart
from saas.organizations.services import OrganizationService
from saas.tenancy.permissions import Role

SYSTEM = Actor.system()
NAMES = ["Ann Lee", "Bob Stone", "ann lee", "Émile Zola", "Bob Stone", "Zoë Quinn", "Al"]
ROLES = [Role.MEMBER, Role.VIEWER, Role.ADMIN, Role.MEMBER]
MEMBERS = 23
LIMIT = 4


async def build(session: AsyncSession) -> tuple[Organization, Organization]:
    orgs = OrganizationService(session=session)
    acme = await orgs.create_organization(slug="acme", display_name="Acme", actor=SYSTEM)
    other = await orgs.create_organization(slug="other", display_name="Other", actor=SYSTEM)
    members = MembershipService(session=session)
    base = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    for i in range(MEMBERS):
        # Every third member never signed in; others share sign-in times in pairs (ties).
        signed_in = None if i % 3 == 0 else base + datetime.timedelta(hours=i // 2)
        user = User(
            sub=f"auth0|m{i}",
            email=f"m{i % 9}.{i}@acme.example",
            name=NAMES[i % len(NAMES)],
            last_login_at=signed_in,
        )
        session.add(user)
        await session.flush()
        await members.add(
            organization_id=acme.id, user_id=user.id, role=ROLES[i % len(ROLES)], actor=SYSTEM
        )
        if i % 4 == 0:  # some of them also belong to another organization
            await members.add(
                organization_id=other.id, user_id=user.id, role=Role.MEMBER, actor=SYSTEM
            )
    await session.commit()
    return acme, other


async def reference(
    session: AsyncSession, org_id: UUID, sort: str, descending: bool, search: str | None = None
) -> list[UUID]:
    """The whole list in the database's own order, in one statement, no cursors."""
    key = MEMBER_SORT_KEYS[sort]
    rows_of = MembershipService(session=session)._member_rows
    statement = rows_of(org_id, search).order_by(*key.order_by(descending))
    rows = await session.execute(statement)
    return [membership.id for membership, _user in rows.tuples()]


async def walk_forward(
    service: MembershipService,
    org_id: UUID,
    sort: str,
    descending: bool,
    search: str | None,
    search_matches: int | None = None,
) -> list[UUID]:
    """Page 1, then `next_cursor` until the end: the ids in the order read."""
    seen: list[UUID] = []
    start, cursor = PageStart.FIRST, None
    while True:
        page = await service.page(
            org_id,
            sort=sort,
            descending=descending,
            limit=LIMIT,
            search=search,
            start=start,
            cursor=cursor,
            search_matches=search_matches,
        )
        assert page.has_previous == (start == PageStart.AFTER)
        assert len(page.rows) <= LIMIT
        seen.extend(m.id for m, _ in page.rows)
        if not page.has_next:
            return seen
        assert len(page.rows) == LIMIT
        start, cursor = PageStart.AFTER, page.next_cursor


async def walk_backward(
    service: MembershipService, org_id: UUID, sort: str, descending: bool
) -> list[UUID]:
    """The last page, then `previous_cursor` until the start: the ids in display order."""
    pages: list[list[UUID]] = []
    start, cursor = PageStart.LAST, None
    while True:
        page = await service.page(
            org_id, sort=sort, descending=descending, limit=LIMIT, start=start, cursor=cursor
        )
        assert page.has_next == (start == PageStart.BEFORE)
        pages.append([m.id for m, _ in page.rows])
        if not page.has_previous:
            break
        start, cursor = PageStart.BEFORE, page.previous_cursor
    # Read backwards, the first page comes out full (not the short remainder).
    assert len(pages[-1]) == LIMIT
    ids: list[UUID] = []
    for chunk in reversed(pages):
        ids.extend(i for i in chunk if i not in ids)
    return ids


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("sort", sorted(MEMBER_SORT_KEYS))
async def test_pages_forward_and_backward_reproduce_the_full_order(
    session: AsyncSession, sort: str, descending: bool
) -> None:
    acme, other = await build(session)
    service = MembershipService(session=session)
    expected = await reference(session, acme.id, sort, descending)
    assert len(expected) == len(set(expected)) == MEMBERS
    assert await walk_forward(service, acme.id, sort, descending, None) == expected
    assert await walk_backward(service, acme.id, sort, descending) == expected
    searched = await reference(session, acme.id, sort, descending, "bob")
    assert 0 < len(searched) < MEMBERS
    assert await walk_forward(service, acme.id, sort, descending, "bob") == searched
    # With few matches counted, the search is sorted without the sort index: same pages.
    few = await service.count_matches(acme.id, "bob")
    assert few == len(searched)
    assert await walk_forward(service, acme.id, sort, descending, "bob", few) == searched
    # Another organization's pages hold only its own members.
    others = await walk_forward(service, other.id, sort, descending, None)
    assert others == await reference(session, other.id, sort, descending)
    assert not set(others) & set(expected)


async def test_never_signed_in_members_sort_after_every_date(session: AsyncSession) -> None:
    acme, _ = await build(session)
    service = MembershipService(session=session)
    page = await service.page(acme.id, sort="last_login", limit=MEMBERS)
    stamps = [user.last_login_at for _, user in page.rows]
    dated = [s for s in stamps if s is not None]
    assert stamps == dated + [None] * (len(stamps) - len(dated))
    assert dated == sorted(dated)
    newest_first = await service.page(acme.id, sort="last_login", descending=True, limit=MEMBERS)
    assert [user.last_login_at for _, user in newest_first.rows] == stamps[::-1]


async def test_each_page_is_one_statement_at_any_depth(session: AsyncSession) -> None:
    acme, _ = await build(session)
    service = MembershipService(session=session)
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        for sort in MEMBER_SORT_KEYS:
            first = await service.page(acme.id, sort=sort, limit=LIMIT)
            deep = first
            for _ in range(3):
                deep = await service.page(
                    acme.id, sort=sort, limit=LIMIT, start=PageStart.AFTER, cursor=deep.next_cursor
                )
            statements.clear()
            await service.page(
                acme.id, sort=sort, limit=LIMIT, start=PageStart.AFTER, cursor=deep.next_cursor
            )
            # A nullable sort's page that crosses into the NULL block reads two index ranges.
            assert len(statements) <= (2 if sort == "last_login" else 1), (sort, statements)
            statements.clear()
            await service.page(acme.id, sort=sort, limit=LIMIT * 3, start=PageStart.LAST)
            assert len(statements) == 1, (sort, statements)
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_cursors_from_another_sort_or_mangled_are_refused(session: AsyncSession) -> None:
    acme, _ = await build(session)
    service = MembershipService(session=session)
    by_email = await service.page(acme.id, sort="email", limit=LIMIT)
    assert by_email.next_cursor is not None
    with pytest.raises(InvalidCursor):
        await service.page(acme.id, sort="name", start=PageStart.AFTER, cursor=by_email.next_cursor)
    with pytest.raises(InvalidCursor):
        await service.page(
            acme.id,
            sort="email",
            descending=True,
            start=PageStart.AFTER,
            cursor=by_email.next_cursor,
        )
    for mangled in ["", "!!!", "bm90IGpzb24", "WzEsMiwzXQ", "x" * 2000]:
        with pytest.raises(InvalidCursor):
            Cursor.decode(mangled)
    # Well-formed, but a NULL where the column cannot be NULL, or a date that is not one.
    with pytest.raises(InvalidCursor):
        await service.page(
            acme.id,
            sort="name",
            start=PageStart.AFTER,
            cursor=Cursor(sort="name", descending=False, value=None, id=by_email.rows[0][0].id),
        )
    with pytest.raises(InvalidCursor):
        await service.page(
            acme.id,
            sort="joined",
            start=PageStart.AFTER,
            cursor=Cursor(sort="joined", descending=False, value="yesterday", id=acme.id),
        )


async def test_a_cursor_past_the_end_gives_the_last_page(session: AsyncSession) -> None:
    acme, _ = await build(session)
    service = MembershipService(session=session)
    last = await service.page(acme.id, sort="email", limit=LIMIT, start=PageStart.LAST)
    beyond = Cursor(sort="email", descending=False, value="\uffff", id=acme.id)
    page = await service.page(
        acme.id, sort="email", limit=LIMIT, start=PageStart.AFTER, cursor=beyond
    )
    assert page.start == PageStart.LAST
    assert [m.id for m, _ in page.rows] == [m.id for m, _ in last.rows]


async def test_member_count_follows_every_join_and_departure(session: AsyncSession) -> None:
    acme, other = await build(session)
    service = MembershipService(session=session)

    async def counted(org: Organization) -> tuple[int, int]:
        rows = await session.scalar(
            select(func.count()).where(Membership.organization_id == org.id)
        )
        stored = await session.scalar(
            select(Organization.member_count).where(Organization.id == org.id)
        )
        return int(stored or 0), int(rows or 0)

    assert await counted(acme) == (MEMBERS, MEMBERS)
    assert await counted(other) == (6, 6)
    page = await service.page(acme.id, limit=3)
    for membership, _ in page.rows:
        await service.remove(organization_id=acme.id, membership_id=membership.id, actor=SYSTEM)
    await session.commit()
    assert await counted(acme) == (MEMBERS - 3, MEMBERS - 3)
    # The in-session organization follows too (the members page reads it from the tenant).
    assert acme.member_count == MEMBERS - 3
    assert await service.count_matches(acme.id, "bob") == len(
        await reference(session, acme.id, "name", False, "bob")
    )
