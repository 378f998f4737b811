"""A large, realistic tenant set for the benchmark, in a database of its own.

1,000 organizations: `bigcorp` (100,000 members, 5,000 pending invitations, a verified domain
and a SAML connection) and 999 small ones (2 to 12 members each, some with a domain);
50,000 audit events. The schema comes from the real migrations (`saas database upgrade`);
rows go in with SQLAlchemy Core bulk `insert()` (lists of dicts, chunked), so the same code fills
PostgreSQL and SQLite.

    uv run python -m bench.datagen --database-url postgresql://postgres@127.0.0.1:5432/saas_bench
    uv run python -m bench.datagen --database-url sqlite:///var/bench.db

For PostgreSQL the database is dropped and created first (it must not be `test` or the app's).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from advanced_alchemy.base import UUIDv7AuditBase
from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import create_async_engine
from uuid_utils.compat import uuid7

from saas.config import PROJECT_ROOT
from saas.db.models import (
    AuditEvent,
    EnterpriseConnection,
    Invitation,
    Membership,
    Organization,
    OrganizationDomain,
    User,
)

BIG_SLUG = "bigcorp"
BIG_AUTH0_ORG_ID = "org_benchbigcorp0001"
BIG_DOMAIN = "bigcorp.example"
BIG_CONNECTION = "bigcorp-saml"
OWNER_EMAIL = f"owner@{BIG_DOMAIN}"
OWNER_SUB = f"samlp|{BIG_CONNECTION}|{OWNER_EMAIL}"
PROTECTED_DATABASES = {"postgres", "test", "template0", "template1", "saas", "app"}

FIRST = [
    "Ada",
    "Alan",
    "Alice",
    "Amara",
    "Ana",
    "Arjun",
    "Ben",
    "Bea",
    "Carla",
    "Chen",
    "Chloe",
    "Dan",
    "Dara",
    "Diego",
    "Elif",
    "Emma",
    "Eva",
    "Farah",
    "Felix",
    "Gina",
    "Hana",
    "Hugo",
    "Ian",
    "Ines",
    "Ivan",
    "Jade",
    "Jon",
    "Jun",
    "Kai",
    "Kemal",
    "Lara",
    "Leo",
    "Lina",
    "Luca",
    "Maya",
    "Mei",
    "Mia",
    "Nadia",
    "Nico",
    "Noor",
    "Olga",
    "Omar",
    "Paul",
    "Priya",
    "Quinn",
    "Rafael",
    "Rosa",
    "Sam",
    "Sara",
    "Sven",
    "Tara",
    "Theo",
    "Uma",
    "Vera",
    "Wei",
    "Yara",
    "Yusuf",
    "Zoe",
]
LAST = [
    "Abbott",
    "Adeyemi",
    "Andersen",
    "Bauer",
    "Becker",
    "Brown",
    "Castro",
    "Chen",
    "Cohen",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Gupta",
    "Hansen",
    "Hoffmann",
    "Ito",
    "Jensen",
    "Kaur",
    "Kim",
    "Kowalski",
    "Larsen",
    "Lee",
    "Lopez",
    "Martin",
    "Meyer",
    "Moreau",
    "Muller",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Perez",
    "Petrov",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Suzuki",
    "Tanaka",
    "Tran",
    "Valdez",
    "Wagner",
    "Weber",
    "Wilson",
    "Yilmaz",
    "Zhang",
]
ROLES_BIG = ["viewer"] * 30 + ["member"] * 60 + ["admin"] * 9 + ["owner"] * 1
ACTIONS = [
    "member.added",
    "member.role_changed",
    "member.removed",
    "invitation.created",
    "invitation.accepted",
    "login.succeeded",
    "domain.verified",
    "project.created",
]
CHUNK = 5_000


@dataclass(frozen=True)
class Sizes:
    organizations: int = 1_000
    big_members: int = 100_000
    big_invitations: int = 5_000
    audit_events: int = 50_000


def sync_url(url: str) -> str:
    """The URL `saas` settings and Alembic accept (they pick the async driver themselves)."""
    for prefix, plain in (
        ("postgresql+asyncpg://", "postgresql://"),
        ("postgres://", "postgresql://"),
    ):
        if url.startswith(prefix):
            return plain + url.removeprefix(prefix)
    if url.startswith("sqlite+aiosqlite:///"):
        return "sqlite:///" + url.removeprefix("sqlite+aiosqlite:///")
    return url


def async_url(url: str) -> str:
    url = sync_url(url)
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    raise SystemExit(f"unsupported database URL: {url}")


def _pg_parts(url: str) -> tuple[str, str]:
    """(maintenance URL on the `postgres` database, the benchmark database's name)."""
    parts = urlsplit(sync_url(url))
    name = parts.path.lstrip("/")
    if not name or name in PROTECTED_DATABASES:
        raise SystemExit(f"refusing to drop/create database {name!r}: use a dedicated one")
    admin = urlunsplit(parts._replace(path="/postgres"))
    return async_url(admin), name


async def recreate_postgres(url: str) -> None:
    admin_url, name = _pg_parts(url)
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


async def drop_postgres(url: str) -> None:
    admin_url, name = _pg_parts(url)
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


def migrate(url: str) -> None:
    """The real migrations, exactly as `make migrate` applies them."""
    env = {**os.environ, "DATABASE_URL": sync_url(url), "APP_ENV": "development"}
    subprocess.run(
        [sys.executable, "-m", "saas.cli", "database", "upgrade", "--no-prompt"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _person(rng: random.Random, index: int, domain: str) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return f"{first} {last}", f"{first.lower()}.{last.lower()}.{index}@{domain}"


def _stamp(now: datetime.datetime, rng: random.Random, days: int) -> datetime.datetime:
    return now - datetime.timedelta(seconds=rng.randrange(days * 86_400))


def build_rows(sizes: Sizes, seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    now = datetime.datetime.now(datetime.UTC)
    orgs: list[dict[str, Any]] = []
    users: list[dict[str, Any]] = []
    memberships: list[dict[str, Any]] = []
    invitations: list[dict[str, Any]] = []
    domains: list[dict[str, Any]] = []
    connections: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []

    def org(slug: str, name: str, auth0_id: str) -> dict[str, Any]:
        created = _stamp(now, rng, 900)
        row = {
            "id": uuid7(),
            "slug": slug,
            "display_name": name,
            "auth0_org_id": auth0_id,
            "status": "active",
            "require_sso": False,
            "default_role": "member",
            "jit_provisioning": False,
            "member_count": 0,  # counted by member() below, as MembershipService.add does
            "created_at": created,
            "updated_at": created,
        }
        orgs.append(row)
        return row

    def user(name: str, email: str, sub: str) -> dict[str, Any]:
        created = _stamp(now, rng, 700)
        row = {
            "id": uuid7(),
            "sub": sub,
            "email": email,
            "name": name,
            "picture": None,
            "is_platform_operator": False,
            "last_login_at": _stamp(now, rng, 60) if rng.random() < 0.8 else None,
            "created_at": created,
            "updated_at": created,
        }
        users.append(row)
        return row

    def member(org_row: dict[str, Any], user_row: dict[str, Any], role: str) -> None:
        joined = _stamp(now, rng, 600)
        org_row["member_count"] += 1
        memberships.append(
            {
                "id": uuid7(),
                "organization_id": org_row["id"],
                "user_id": user_row["id"],
                "role": role,
                "created_at": joined,
                "updated_at": joined,
            }
        )

    big = org(BIG_SLUG, "BigCorp International", BIG_AUTH0_ORG_ID)
    big["require_sso"] = True
    owner = user("Olga Owner", OWNER_EMAIL, OWNER_SUB)
    member(big, owner, "owner")
    for i in range(sizes.big_members - 1):
        name, email = _person(rng, i, BIG_DOMAIN)
        member(big, user(name, email, f"samlp|{BIG_CONNECTION}|{email}"), rng.choice(ROLES_BIG))
    domains.append(
        {
            "id": uuid7(),
            "organization_id": big["id"],
            "domain": BIG_DOMAIN,
            "verified_at": now,
            "verification_token": hashlib.sha256(b"bigcorp").hexdigest(),
            "created_at": now,
            "updated_at": now,
        }
    )
    connections.append(
        {
            "id": uuid7(),
            "organization_id": big["id"],
            "auth0_connection_name": BIG_CONNECTION,
            "auth0_connection_id": "con_benchbigcorpsaml",
            "strategy": "samlp",
            "display_name": "BigCorp SSO",
            "options": {"metadata_url": "https://idp.bigcorp.example/metadata"},
            "created_at": now,
            "updated_at": now,
        }
    )
    for i in range(sizes.big_invitations):
        created = _stamp(now, rng, 6)
        invitations.append(
            {
                "id": uuid7(),
                "organization_id": big["id"],
                "email": f"invitee.{i}@{BIG_DOMAIN}",
                "role": rng.choice(["member", "viewer", "admin"]),
                "inviter_id": owner["id"],
                "token_hash": hashlib.sha256(f"bench-invite-{i}".encode()).hexdigest(),
                "auth0_invitation_id": None,
                "expires_at": created + datetime.timedelta(days=7),
                "accepted_at": None,
                "revoked_at": None,
                "created_at": created,
                "updated_at": created,
            }
        )

    small_orgs = []
    for n in range(1, sizes.organizations):
        slug = f"tenant-{n:04d}"
        small = org(slug, f"Tenant {n:04d} Ltd", f"org_bench{n:011d}")
        small_orgs.append(small)
        domain = f"{slug}.example"
        if n % 3 == 0:
            domains.append(
                {
                    "id": uuid7(),
                    "organization_id": small["id"],
                    "domain": domain,
                    "verified_at": now if n % 2 else None,
                    "verification_token": hashlib.sha256(domain.encode()).hexdigest(),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        for j in range(rng.randint(2, 12)):
            name, email = _person(rng, j, domain)
            member(small, user(name, email, f"auth0|{slug}-{j}"), "owner" if j == 0 else "member")

    members_by_org = [(big, sizes.big_members)] + [(o, 1) for o in small_orgs]
    for _ in range(sizes.audit_events):
        target_org = big if rng.random() < 0.6 else rng.choice(members_by_org)[0]
        at = _stamp(now, rng, 365)
        audit.append(
            {
                "id": uuid7(),
                "organization_id": target_org["id"],
                "actor_id": owner["id"] if target_org is big else None,
                "action": rng.choice(ACTIONS),
                "target_type": "user",
                "target_id": str(rng.choice(users)["id"]),
                "details": {"role": rng.choice(["member", "viewer", "admin"])},
                "ip_address": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
                "user_agent": "Mozilla/5.0 (bench)",
                "created_at": at,
                "updated_at": at,
            }
        )
    return {
        "organizations": orgs,
        "users": users,
        "memberships": memberships,
        "organization_domains": domains,
        "enterprise_connections": connections,
        "invitations": invitations,
        "audit_events": audit,
    }


def _table(model: type[UUIDv7AuditBase]) -> Table:
    table = model.__table__  # typed as any FromClause; a declarative model's is a Table
    assert isinstance(table, Table)
    return table


TABLES = {
    "organizations": _table(Organization),
    "users": _table(User),
    "memberships": _table(Membership),
    "organization_domains": _table(OrganizationDomain),
    "enterprise_connections": _table(EnterpriseConnection),
    "invitations": _table(Invitation),
    "audit_events": _table(AuditEvent),
}


async def insert_rows(url: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            for name, table in TABLES.items():
                batch = rows[name]
                for start in range(0, len(batch), CHUNK):
                    await conn.execute(insert(table), batch[start : start + CHUNK])
            if engine.dialect.name != "postgresql":
                await conn.execute(text("ANALYZE"))
        if engine.dialect.name == "postgresql":
            # The steady state autovacuum would reach: statistics and the visibility map (so
            # counts can be index-only scans), not a table fresh from a bulk load.
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                for name in TABLES:
                    await conn.execute(text(f"VACUUM ANALYZE {name}"))
    finally:
        await engine.dispose()


async def generate(url: str, sizes: Sizes = Sizes(), *, recreate: bool = True) -> dict[str, int]:
    url = sync_url(url)
    if url.startswith("postgresql://"):
        if recreate:
            await recreate_postgres(url)
    elif url.startswith("sqlite:///") and recreate:
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(migrate, url)
    rows = build_rows(sizes)
    await insert_rows(url, rows)
    return {name: len(batch) for name, batch in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/saas_bench",
        help="PostgreSQL (database dropped and re-created) or sqlite:///path",
    )
    parser.add_argument("--members", type=int, default=Sizes.big_members)
    parser.add_argument("--organizations", type=int, default=Sizes.organizations)
    parser.add_argument("--audit-events", type=int, default=Sizes.audit_events)
    parser.add_argument("--invitations", type=int, default=Sizes.big_invitations)
    args = parser.parse_args()
    sizes = Sizes(args.organizations, args.members, args.invitations, args.audit_events)
    started = time.perf_counter()
    counts = asyncio.run(generate(args.database_url, sizes))
    took = time.perf_counter() - started
    print(", ".join(f"{n:,} {name}" for name, n in counts.items()) + f" in {took:.1f} s")


if __name__ == "__main__":
    main()
