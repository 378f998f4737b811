"""Shared fixtures: settings, real databases on both backends, sessions, the running stack.

`backend` is parametrized over SQLite and PostgreSQL, so every test that asks for
`database_url` or `stack` runs on both. It is session-scoped, so pytest runs a module's SQLite
tests before its PostgreSQL ones instead of alternating, and a running stack serves them all.

- `database_url`: SQLite tests copy a migrated template file (fast, fully isolated);
  PostgreSQL tests share one migrated throwaway database per run and have their rows
  deleted afterwards.
- `stack`: the app and the dev IdP under uvicorn on a database of their own, started once
  for the tests that ask for the same backend and settings (one running stack per backend),
  and reset to their freshly seeded state before each test (tests/support/stack.py). A module
  or a test declares the settings it needs with `pytest.mark.stack(name=value, ...)`, or by
  overriding `stack_overrides` when a value comes from another fixture.

The suite runs under pytest-xdist (addopts in pyproject.toml): each worker has its own
databases, stacks, DNS server and Redis database (`pytest_configure` below); `-n0` runs it in
one process.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from advanced_alchemy.base import metadata_registry
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import saas.db.models  # noqa: F401
from saas.config import Settings, load_settings
from saas.db.config import create_sqlalchemy_config
from saas.devidp import passwords as devidp_passwords
from tests.support.databases import ThrowawayDatabase, require_postgres
from tests.support.dns_server import TxtZone, dns_server
from tests.support.migrations import upgrade
from tests.support.stack import Stack, StackPool
from tests.support.tls import share_tls_context

BACKENDS = ("sqlite", "postgresql")


DEFAULT_REDIS_DB = 15


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker gets a Redis database of its own, so that one worker's
    sessions and sign-in counters (all from 127.0.0.1) never meet another's: worker k uses
    TEST_REDIS_URL's database + k, or 15 - k when TEST_REDIS_URL is not set. Every httpx
    client of the run shares one TLS context (tests/support/tls.py)."""
    share_tls_context()
    # Each test process holds the servers, their apps and the browser driver: a large heap
    # that CPython's default thresholds (700 allocations) scan over and over. Collections every
    # 10,000 allocations took the garbage collector from 3.96 s to 1.66 s of a 40 s run of two
    # server-heavy modules here; nothing else changes.
    gc.set_threshold(10_000, 10, 10)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return
    index = int(worker.removeprefix("gw"))
    given = os.environ.get("TEST_REDIS_URL")
    if given is None:
        url, db = f"redis://127.0.0.1:6379/{DEFAULT_REDIS_DB}", DEFAULT_REDIS_DB - index
    else:
        url = given
        db = int(urlsplit(url).path.lstrip("/") or 0) + index
    os.environ["TEST_REDIS_URL"] = urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


def _dispatch_rank(item: pytest.Item) -> int:
    if item.get_closest_marker("long_module") is not None:
        return 0
    path = str(item.path)
    if "/tests/e2e/" in path:
        return 1
    return 2 if "/tests/integration/" in path else 3


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first: pytest-xdist hands whole modules to workers in this order
    (`--no-loadscope-reorder`: by default it would order them by their number of tests, which
    put a 60 s module of two tests last, to finish alone). First the modules marked
    `long_module` (few tests, tens of seconds: subprocesses, fuzzing, whole matrices), then the
    browser modules, then the other integration modules, then the unit tests to fill the end;
    within each, more tests first. A worker's browser modules thus mostly come one after
    another and share one Chromium, which stops before the first test that is not a browser
    test (tests/e2e/conftest.py), so `asyncio.run()` works there. Last of these hooks, so
    after pytest has grouped the tests by backend (a stable sort keeps that grouping, and each
    module's tests stay together)."""
    sizes = Counter(item.path for item in items)
    items.sort(key=lambda item: (_dispatch_rank(item), -sizes[item.path], str(item.path)))


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "empty.db")


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "app.db"
    upgrade(sqlite_url(path))
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[ThrowawayDatabase]:
    """A migrated database nobody connects to, copied for each database the tests use."""
    server = require_postgres()
    database = ThrowawayDatabase.create(server)
    try:
        upgrade(database.url)
        yield database
    finally:
        database.drop()


@pytest.fixture(scope="session")
def migrated_postgres(postgres_template: ThrowawayDatabase) -> Iterator[str]:
    database = ThrowawayDatabase.create(
        postgres_template.server_url, template=postgres_template.name
    )
    try:
        yield database.url
    finally:
        database.drop()


async def _delete_all_rows(url: str) -> None:
    # DELETE, children first: faster than TRUNCATE on tables this small (see snapshots.py).
    engine = create_sqlalchemy_config(load_settings(database_url=url)).get_engine()
    try:
        async with engine.begin() as connection:
            for table in reversed(metadata_registry.get(None).sorted_tables):
                await connection.execute(table.delete())
    finally:
        await engine.dispose()


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("migrated_sqlite_template")
        target = tmp_path / "app.db"
        shutil.copyfile(template, target)
        yield sqlite_url(target)
        return
    url: str = request.getfixturevalue("migrated_postgres")
    yield url
    asyncio.run(_delete_all_rows(url))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        app_env="test",
        devidp_database_url=sqlite_url(tmp_path / "devidp.db"),
        devidp_key_path=tmp_path / "devidp-keys.json",
    )


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_sqlalchemy_config(settings).get_engine()
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
async def session(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with session_factory() as session:
        yield session


@pytest.fixture(scope="session", autouse=True)
def _cheap_dev_idp_password_hashes() -> Iterator[None]:
    """The dev IdP (in this process, a stand-in for Auth0) hashes the demo password whenever
    it starts and checks it at every password sign-in, with argon2id at its default cost:
    about 150 ms each here. For tests, argon2's cheapest parameters: the same hash and check,
    a fraction of a millisecond. Nothing in the app hashes passwords."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(devidp_passwords, "_hasher", PasswordHasher.from_parameters(CHEAPEST))
        yield


# ---- the running stack ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def dns_nameserver() -> Iterator[tuple[str, TxtZone]]:
    """One DNS server for the run: its address is part of the settings of the stacks that
    verify domains, so it stays the same and those stacks can be reused."""
    with dns_server() as server:
        yield server


@pytest.fixture
def dns(dns_nameserver: tuple[str, TxtZone]) -> tuple[str, TxtZone]:
    """("127.0.0.1:<port>", zone), the zone empty at the start of each test."""
    dns_nameserver[1].reset()
    return dns_nameserver


@pytest.fixture
def stack_overrides(request: pytest.FixtureRequest) -> dict[str, object]:
    """The settings this test's stack needs beyond the defaults of `stack_settings`: from
    `pytest.mark.stack(...)` on the test, its class or its module (the closest wins)."""
    overrides: dict[str, object] = {}
    for marker in reversed(list(request.node.iter_markers("stack"))):
        overrides.update(marker.kwargs)
    return overrides


@pytest.fixture(scope="session")
def stack_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackPool]:
    pool = StackPool(tmp_path_factory.mktemp("stacks"))
    try:
        yield pool
    finally:
        pool.close()


@contextmanager
def _sqlite_copy(template: Path, directory: Path) -> Iterator[str]:
    target = directory / "app.db"
    shutil.copyfile(template, target)
    yield sqlite_url(target)


@contextmanager
def _postgres_copy(template: ThrowawayDatabase) -> Iterator[str]:
    database = ThrowawayDatabase.create(template.server_url, template=template.name)
    try:
        yield database.url
    finally:
        database.drop()


@pytest.fixture
def stack(
    backend: str,
    stack_overrides: dict[str, object],
    stack_pool: StackPool,
    request: pytest.FixtureRequest,
) -> Stack:
    """The app and the dev IdP, running, in the state they started in: seeded, no sessions,
    no counts, no mail, no faults, no jobs beyond the seed's."""
    if backend == "sqlite":
        sqlite_template: Path = request.getfixturevalue("migrated_sqlite_template")
        return stack_pool.get(
            backend, stack_overrides, lambda directory: _sqlite_copy(sqlite_template, directory)
        )
    postgres: ThrowawayDatabase = request.getfixturevalue("postgres_template")
    return stack_pool.get(backend, stack_overrides, lambda _: _postgres_copy(postgres))
