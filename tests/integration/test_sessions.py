"""Sessions: Redis-backed when REDIS_URL is set, idle and absolute deadlines, rate limits."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis
from litestar.stores.file import StorageObject

from saas.config import load_settings
from saas.login.sessions import CREATED_AT, LAST_SEEN_AT, USER_ID, session_expired
from tests.support.databases import in_ci
from tests.support.stack import Stack, running_stack, stack_settings

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def require_redis() -> str:
    async def ping() -> None:
        client = aioredis.from_url(REDIS_URL)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        asyncio.run(ping())
    except (OSError, aioredis.RedisError) as error:
        message = f"Redis not reachable at {REDIS_URL}: {error}"
        if in_ci():
            pytest.fail(f"{message} (CI=true: Redis tests must run)")
        pytest.skip(message)
    return REDIS_URL


def test_deadlines() -> None:
    settings = load_settings(
        session_idle_timeout_seconds=600, session_absolute_timeout_seconds=3600
    )
    start = 1_000_000
    fresh = {USER_ID: "u", CREATED_AT: start, LAST_SEEN_AT: start}
    assert not session_expired(fresh, settings, start + 599)
    assert session_expired(fresh, settings, start + 601)  # idle
    busy = {USER_ID: "u", CREATED_AT: start, LAST_SEEN_AT: start + 3500}
    assert not session_expired(busy, settings, start + 3599)
    assert session_expired(busy, settings, start + 3601)  # absolute, however active


@pytest.fixture
def redis_stack(tmp_path: Path, migrated_sqlite_template: Path) -> Iterator[Stack]:
    url = require_redis()
    database = tmp_path / "app.db"
    database.write_bytes(migrated_sqlite_template.read_bytes())
    settings = stack_settings(f"sqlite+aiosqlite:///{database}", tmp_path, redis_url=url)
    with running_stack(settings) as stack:
        yield stack


def test_sessions_live_in_redis(redis_stack: Stack) -> None:
    browser = redis_stack.browser()
    page = browser.login("alice@acme.example")
    assert page.status_code == 200
    session_id = browser.client.cookies.get("saas_session")
    assert session_id

    async def stored() -> bool:
        client = aioredis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match="saas*")]
            return any(session_id.encode() in key for key in keys)
        finally:
            await client.aclose()

    assert asyncio.run(stored())
    # No session state leaks onto the disk when Redis holds it.
    assert not (redis_stack.settings.state_dir / "stores" / "sessions").exists()


def test_expired_session_is_signed_out(tmp_path: Path, migrated_sqlite_template: Path) -> None:
    database = tmp_path / "app.db"
    database.write_bytes(migrated_sqlite_template.read_bytes())
    settings = stack_settings(
        f"sqlite+aiosqlite:///{database}", tmp_path, session_idle_timeout_seconds=60
    )
    with running_stack(settings) as stack:
        browser = stack.browser()
        browser.login("alice@acme.example")
        assert browser.get("/o/acme/").status_code == 200
        # Age the stored session past its idle deadline, as if a minute of silence had passed.
        store = settings.state_dir / "stores" / "sessions"
        files = list(store.iterdir())
        assert files
        for path in files:
            raw = path.read_bytes()
            obj = msgspec.msgpack.decode(raw, type=StorageObject)
            data = msgspec.json.decode(obj.data)
            if isinstance(data, dict) and data.get(USER_ID):
                data[LAST_SEEN_AT] -= 120
                path.write_bytes(
                    msgspec.msgpack.encode(
                        StorageObject(data=msgspec.json.encode(data), expires_at=obj.expires_at)
                    )
                )
        response = browser.get("/o/acme/")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/o/acme/login")


def test_sign_in_paths_are_rate_limited(tmp_path: Path, migrated_sqlite_template: Path) -> None:
    database = tmp_path / "app.db"
    database.write_bytes(migrated_sqlite_template.read_bytes())
    settings = stack_settings(
        f"sqlite+aiosqlite:///{database}", tmp_path, login_rate_limit_per_minute=5
    )
    with running_stack(settings) as stack:
        browser = stack.browser()
        statuses = [browser.get("/login").status_code for _ in range(6)]
        assert statuses[:5] == [200] * 5
        assert statuses[5] == 429
        limited = browser.get("/login", headers={"accept": "text/html"})
        assert "Too many sign-in attempts" in limited.text
        assert browser.get("/health").status_code == 200  # other paths are not limited
