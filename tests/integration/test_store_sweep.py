"""Expired entries of the file-backed stores are deleted by the running app, not only on read.

Real files under a temporary STATE_DIR, real time with short lifetimes, the app under uvicorn
with its lifespan sweeping. Entries are written by a second store on the same directory, as
another app process would write them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from litestar.stores.file import FileStore

from saas.config import Settings
from saas.login.sessions import RATE_LIMIT_STORE, SESSION_STORE
from tests.support.stack import running_stack, stack_settings

SWEEP_SECONDS = 0.3


@pytest.fixture
def settings(tmp_path: Path, migrated_sqlite_template: Path) -> Settings:
    database = tmp_path / "app.db"
    database.write_bytes(migrated_sqlite_template.read_bytes())
    return stack_settings(
        f"sqlite+aiosqlite:///{database}",
        tmp_path,
        outbox_worker_enabled=False,
        store_sweep_interval_seconds=SWEEP_SECONDS,
    )


@pytest.fixture
def app_url(settings: Settings) -> Iterator[str]:
    with running_stack(settings) as stack:
        yield stack.app_url


def store_dir(settings: Settings, name: str) -> Path:
    return settings.state_dir / "stores" / name


async def write(directory: Path, entries: dict[str, int]) -> None:
    store = FileStore(directory, create_directories=True)
    await store.__aenter__()
    for key, lifetime in entries.items():
        await store.set(key, b"x", expires_in=lifetime)


async def live_keys(directory: Path, keys: list[str]) -> set[str]:
    store = FileStore(directory)
    return {key for key in keys if await store.exists(key)}


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_expired_sessions_and_counters_are_deleted_and_live_ones_kept(
    settings: Settings, app_url: str
) -> None:
    # A real anonymous sign-in start writes a session file that must outlive the sweeps.
    started = httpx.get(app_url + "/o/acme/login")
    assert started.status_code == 303
    sessions = store_dir(settings, SESSION_STORE)
    counters = store_dir(settings, RATE_LIMIT_STORE)
    request_files = {path.name for path in sessions.iterdir()}
    assert len(request_files) == 1

    short = {f"short-{i}": 1 for i in range(20)}
    long = {f"long-{i}": 3600 for i in range(3)}
    for directory in (sessions, counters):
        asyncio.run(write(directory, {**short, **long}))
        # A temporary file another process is writing, and a file nobody can decode: neither
        # may stop the sweep of the files after them.
        (directory / "0-being-written.tmpabc").write_bytes(b"\x93\x01")
        (directory / "0-corrupt").write_bytes(b"not msgpack")

    def swept() -> bool:
        return all(
            not asyncio.run(live_keys(directory, list(short))) for directory in (sessions, counters)
        )

    time.sleep(1.0)  # the short entries expire now
    assert wait_until(swept), "expired entries were not deleted"
    for directory in (sessions, counters):
        assert asyncio.run(live_keys(directory, list(long))) == set(long)
        assert (directory / "0-being-written.tmpabc").exists()  # not ours to judge yet
    assert request_files <= {path.name for path in sessions.iterdir()}
    # The session the sign-in started is still there for its callback.
    counter_files = [p for p in counters.iterdir() if not p.name.startswith("0-")]
    assert len(counter_files) == len(long) + 1  # the long entries and the request's counter
