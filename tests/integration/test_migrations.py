"""Migrations are the only way the schema changes: prove they match the models and run
both ways, from an empty database, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from advanced_alchemy.base import metadata_registry
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import Boolean, Integer, String, column, insert, inspect, table

from saas.config import load_settings
from saas.db.config import create_sqlalchemy_config
from tests.support.databases import ThrowawayDatabase, require_postgres
from tests.support.migrations import alembic_for, run_in_thread


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    database = ThrowawayDatabase.create(require_postgres())
    try:
        yield database.url
    finally:
        database.drop()


async def _table_names(url: str) -> set[str]:
    engine = create_sqlalchemy_config(load_settings(database_url=url)).get_engine()
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    return set(names)


# SQLite cannot reflect expression-based indexes (the case-insensitive unique ones), so on
# SQLite `alembic check` says it skips them. PostgreSQL reflects them, and its run of this test
# compares them; the skip is expected there, not a finding.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_upgrade_check_and_downgrade_round_trip(empty_database_url: str) -> None:
    model_tables = set(metadata_registry.get(None).tables)

    run_in_thread(lambda: alembic_for(empty_database_url).upgrade("head"))
    assert model_tables <= asyncio.run(_table_names(empty_database_url))

    # `alembic check` raises when autogenerate finds any difference between models and schema.
    run_in_thread(lambda: alembic_for(empty_database_url).check())

    run_in_thread(lambda: alembic_for(empty_database_url).downgrade("base"))
    assert asyncio.run(_table_names(empty_database_url)) <= {"alembic_version"}

    # And back up again: downgrade left nothing behind that blocks a fresh upgrade.
    run_in_thread(lambda: alembic_for(empty_database_url).upgrade("head"))
    run_in_thread(lambda: alembic_for(empty_database_url).check())


def test_history_is_linear() -> None:
    from alembic.script import ScriptDirectory

    from saas.db.config import MIGRATIONS_DIR

    config = alembic_for("sqlite+aiosqlite:///:memory:").config
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(config)
    assert len(scripts.get_heads()) == 1
    assert len(scripts.get_bases()) == 1


# Tables as an older schema had them, written with plain Core (the models describe head).
def stamped(name: str, *columns: Any) -> Any:
    """A table with the id and audit timestamps every model has."""
    return table(
        name,
        column("id", GUID()),
        column("created_at", DateTimeUTC()),
        column("updated_at", DateTimeUTC()),
        *columns,
    )


def organizations_table(*extra: Any) -> Any:
    return stamped(
        "organizations",
        *(column(c, String()) for c in ("slug", "display_name", "status", "default_role")),
        column("require_sso", Boolean()),
        column("jit_provisioning", Boolean()),
        *extra,
    )


def organization_row(org_id: uuid.UUID, slug: str, at: datetime.datetime) -> dict[str, Any]:
    return {
        "id": org_id,
        "slug": slug,
        "display_name": slug,
        "status": "active",
        "default_role": "member",
        "require_sso": False,
        "jit_provisioning": False,
        "created_at": at,
        "updated_at": at,
    }


async def _fill_0003_schema(url: str) -> None:
    """Two organizations (3 members, none) written against the 0003 schema: no member_count."""
    organizations = organizations_table()
    users = stamped(
        "users",
        *(column(c, String()) for c in ("sub", "email", "name")),
        column("is_platform_operator", Boolean()),
    )
    memberships = stamped(
        "memberships",
        column("organization_id", GUID()),
        column("user_id", GUID()),
        column("role", String()),
    )
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    stamps = {"created_at": now, "updated_at": now}
    big, empty = uuid.uuid4(), uuid.uuid4()
    engine = create_sqlalchemy_config(load_settings(database_url=url)).get_engine()
    try:
        async with engine.begin() as connection:
            for org_id, slug in ((big, "big"), (empty, "empty")):
                await connection.execute(
                    insert(organizations).values(**organization_row(org_id, slug, now))
                )
            for i in range(3):
                user_id = uuid.uuid4()
                await connection.execute(
                    insert(users).values(
                        id=user_id,
                        sub=f"auth0|{i}",
                        email=f"u{i}@x.example",
                        name=f"U{i}",
                        is_platform_operator=False,
                        **stamps,
                    )
                )
                await connection.execute(
                    insert(memberships).values(
                        id=uuid.uuid4(),
                        organization_id=big,
                        user_id=user_id,
                        role="member",
                        **stamps,
                    )
                )
    finally:
        await engine.dispose()


async def _member_counts(url: str) -> list[tuple[str, int]]:
    from sqlalchemy import text

    engine = create_sqlalchemy_config(load_settings(database_url=url)).get_engine()
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT slug, member_count FROM organizations ORDER BY slug")
            )
            return [(slug, int(count)) for slug, count in rows]
    finally:
        await engine.dispose()


def test_member_count_is_backfilled_from_existing_memberships(empty_database_url: str) -> None:
    """0004 adds organizations.member_count: existing organizations get their real counts."""
    run_in_thread(lambda: alembic_for(empty_database_url).upgrade("0003"))
    asyncio.run(_fill_0003_schema(empty_database_url))
    run_in_thread(lambda: alembic_for(empty_database_url).upgrade("head"))
    assert asyncio.run(_member_counts(empty_database_url)) == [("big", 3), ("empty", 0)]


async def _fill_0006_projects(url: str) -> None:
    """Names that differ only in case, as the 0006 schema let two racing requests write."""
    organizations = organizations_table(column("member_count", Integer()))
    projects = stamped("projects", column("organization_id", GUID()), column("name", String()))
    first, second = uuid.uuid4(), uuid.uuid4()
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    engine = create_sqlalchemy_config(load_settings(database_url=url)).get_engine()
    try:
        async with engine.begin() as connection:
            for org_id, slug in ((first, "first"), (second, "second")):
                await connection.execute(
                    insert(organizations).values(
                        **organization_row(org_id, slug, start), member_count=0
                    )
                )
            rows = [
                (first, "Roadmap"),
                (first, "roadmap"),
                (first, "ROADMAP"),
                (first, "roadmap (2)"),
                (second, "roadmap"),
            ]
            for minutes, (org_id, name) in enumerate(rows):
                at = start + datetime.timedelta(minutes=minutes)
                await connection.execute(
                    insert(projects).values(
                        id=uuid.uuid4(),
                        organization_id=org_id,
                        name=name,
                        created_at=at,
                        updated_at=at,
                    )
                )
    finally:
        await engine.dispose()


async def _project_names(url: str) -> list[tuple[str, str]]:
    from sqlalchemy import text

    engine = create_sqlalchemy_config(load_settings(database_url=url)).get_engine()
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT o.slug, p.name FROM projects p"
                    " JOIN organizations o ON o.id = p.organization_id ORDER BY o.slug, p.name"
                )
            )
            return [(slug, name) for slug, name in rows]
    finally:
        await engine.dispose()


def test_project_names_differing_only_in_case_are_made_distinct(empty_database_url: str) -> None:
    """0007 makes (organization, lower(name)) unique: existing case variants are renamed first,
    the oldest keeping its name, the others a free " (n)"."""
    run_in_thread(lambda: alembic_for(empty_database_url).upgrade("0006"))
    asyncio.run(_fill_0006_projects(empty_database_url))
    run_in_thread(lambda: alembic_for(empty_database_url).upgrade("head"))
    assert sorted(asyncio.run(_project_names(empty_database_url))) == sorted(
        [
            ("first", "Roadmap"),
            ("first", "roadmap (3)"),
            ("first", "ROADMAP (4)"),
            ("first", "roadmap (2)"),
            ("second", "roadmap"),
        ]
    )


async def _fill_0010_domains(url: str) -> None:
    """What 0010 allows and the global constraint did not: one domain claimed by several
    organizations. `shared.example` verified by the newest claim, `pending.example` by none."""
    organizations = organizations_table(column("member_count", Integer()))
    domains = stamped(
        "organization_domains",
        column("organization_id", GUID()),
        column("domain", String()),
        column("verified_at", DateTimeUTC()),
        column("verification_token", String()),
    )
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    orgs = {slug: uuid.uuid4() for slug in ("first", "second", "third")}
    rows = [
        ("first", "shared.example", False),
        ("second", "shared.example", False),
        ("third", "shared.example", True),
        ("second", "pending.example", False),
        ("third", "pending.example", False),
        ("first", "alone.example", False),
    ]
    engine = create_sqlalchemy_config(load_settings(database_url=url)).get_engine()
    try:
        async with engine.begin() as connection:
            for slug, org_id in orgs.items():
                await connection.execute(
                    insert(organizations).values(
                        **organization_row(org_id, slug, start), member_count=0
                    )
                )
            for minutes, (slug, domain, verified) in enumerate(rows):
                at = start + datetime.timedelta(minutes=minutes)
                await connection.execute(
                    insert(domains).values(
                        id=uuid.uuid4(),
                        organization_id=orgs[slug],
                        domain=domain,
                        verified_at=at if verified else None,
                        verification_token="t",
                        created_at=at,
                        updated_at=at,
                    )
                )
    finally:
        await engine.dispose()


async def _domain_holders(url: str) -> list[tuple[str, str, bool]]:
    from sqlalchemy import text

    engine = create_sqlalchemy_config(load_settings(database_url=url)).get_engine()
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT d.domain, o.slug, d.verified_at IS NOT NULL FROM organization_domains d"
                    " JOIN organizations o ON o.id = d.organization_id ORDER BY d.domain, o.slug"
                )
            )
            return [(domain, slug, bool(verified)) for domain, slug, verified in rows]
    finally:
        await engine.dispose()


def test_downgrading_0010_keeps_one_claim_per_domain(empty_database_url: str) -> None:
    """Below 0010 a domain is globally unique again: the verified claim stays, else the
    oldest; the other (unverified) claims are deleted first."""
    run_in_thread(lambda: alembic_for(empty_database_url).upgrade("0010"))
    asyncio.run(_fill_0010_domains(empty_database_url))
    run_in_thread(lambda: alembic_for(empty_database_url).downgrade("0009_security_policy"))
    assert asyncio.run(_domain_holders(empty_database_url)) == [
        ("alone.example", "first", False),
        ("pending.example", "second", False),
        ("shared.example", "third", True),
    ]
    run_in_thread(lambda: alembic_for(empty_database_url).upgrade("head"))
