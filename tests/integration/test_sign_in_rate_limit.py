"""The sign-in rate limit under real concurrency: one counter for every app process.

Two app servers share one Redis database, as two nodes behind a load balancer do; a burst of
concurrent requests from one address must be let through exactly `limit` times. Without Redis
the counter lives in the process's file store and is exact within that one process.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from saas.app import create_app
from saas.config import Settings
from tests.integration.test_sessions import require_redis
from tests.support.servers import serve
from tests.support.stack import stack_settings

LIMIT = 30
BURST = 200
# Paths served without touching the database or the IdP, so the burst measures the limiter.
SIGN_IN_PATHS = ("/login", "/callback", "/invitation")


async def _flush_rate_limits(url: str) -> None:
    # Earlier runs within the last minute left counters for 127.0.0.1 behind.
    client = aioredis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match="saas_ratelimit:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def _settings(tmp_path: Path, template: Path, **overrides: object) -> Settings:
    database = tmp_path / "app.db"
    database.write_bytes(template.read_bytes())
    return stack_settings(
        f"sqlite+aiosqlite:///{database}",
        tmp_path,
        login_rate_limit_per_minute=LIMIT,
        outbox_worker_enabled=False,
        **overrides,
    )


@pytest.fixture
def two_nodes(tmp_path: Path, migrated_sqlite_template: Path) -> Iterator[list[str]]:
    url = require_redis()
    asyncio.run(_flush_rate_limits(url))
    settings = _settings(tmp_path, migrated_sqlite_template, redis_url=url)
    # Two apps, each with its own middleware, locks and Redis connections: two nodes.
    with serve(create_app(settings)) as first, serve(create_app(settings)) as second:
        yield [first, second]
    asyncio.run(_flush_rate_limits(url))


@pytest.fixture
def one_file_node(tmp_path: Path, migrated_sqlite_template: Path) -> Iterator[list[str]]:
    settings = _settings(tmp_path, migrated_sqlite_template)
    assert settings.redis_url is None
    with serve(create_app(settings)) as node:
        yield [node]


def burst(nodes: list[str], paths: tuple[str, ...] = ("/login",)) -> list[httpx.Response]:
    """BURST requests at once, spread over the nodes and paths, all from 127.0.0.1."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            start = asyncio.Event()

            async def one(i: int) -> httpx.Response:
                await start.wait()
                url = nodes[i % len(nodes)] + paths[(i // len(nodes)) % len(paths)]
                return await client.get(url, headers={"accept": "text/html"})

            tasks = [asyncio.create_task(one(i)) for i in range(BURST)]
            await asyncio.sleep(0)
            start.set()
            return await asyncio.gather(*tasks)

    return asyncio.run(run())


def allowed(responses: list[httpx.Response]) -> int:
    statuses = {r.status_code for r in responses}
    assert statuses <= {200, 400, 429}, statuses
    return sum(1 for r in responses if r.status_code != 429)


def test_two_nodes_sharing_redis_let_exactly_the_limit_through(two_nodes: list[str]) -> None:
    started = time.monotonic()
    responses = burst(two_nodes)
    elapsed = time.monotonic() - started
    through = allowed(responses)
    print(f"two nodes, one Redis: {through} of {BURST} allowed (limit {LIMIT})")
    assert through == LIMIT

    limited = [r for r in responses if r.status_code == 429]
    for response in limited:
        # The window opened with the first request of the burst and lasts a minute; the answer
        # names the whole seconds left, rounded up so a client waiting that long is let in.
        retry_after = int(response.headers["retry-after"])
        assert 60 - elapsed - 1 <= retry_after <= 60
        assert response.headers["ratelimit-reset"] == str(retry_after)
        assert response.headers["ratelimit-remaining"] == "0"


def test_the_limited_page_and_problem_say_when_to_try_again(two_nodes: list[str]) -> None:
    burst(two_nodes)
    page = httpx.get(two_nodes[0] + "/login", headers={"accept": "text/html"})
    assert page.status_code == 429
    seconds = int(page.headers["retry-after"])
    assert 0 < seconds <= 60
    assert page.headers["content-type"].startswith("text/html")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    assert "Too many sign-in attempts" in text
    assert re.search(rf"try again in {seconds - 1}|try again in {seconds}", text), text
    assert "Too Many Requests" not in text

    problem = httpx.get(two_nodes[1] + "/login", headers={"accept": "application/json"})
    assert problem.status_code == 429
    assert problem.headers["content-type"] == "application/problem+json"
    body = problem.json()
    retry_after = int(problem.headers["retry-after"])
    assert body["status"] == 429
    assert body["retry_after"] == retry_after
    assert f"try again in {retry_after} second" in body["detail"]


def test_without_redis_the_limit_is_exact_within_one_process(one_file_node: list[str]) -> None:
    # Three routes, three middleware instances in Litestar's stack: one counter all the same.
    responses = burst(one_file_node, SIGN_IN_PATHS)
    through = allowed(responses)
    print(f"one node, file store: {through} of {BURST} allowed (limit {LIMIT})")
    assert through == LIMIT
    assert all("retry-after" in r.headers for r in responses if r.status_code == 429)


def test_an_ipv6_client_counts_against_its_slash_64(
    tmp_path: Path, migrated_sqlite_template: Path
) -> None:
    url = require_redis()
    asyncio.run(_flush_rate_limits(url))
    settings = _settings(tmp_path, migrated_sqlite_template, redis_url=url)
    try:
        with serve(create_app(settings), host="::1") as node:
            for _ in range(3):
                assert httpx.get(node + "/login", timeout=10).status_code == 200
        keys = asyncio.run(_rate_limit_keys(url))
    finally:
        asyncio.run(_flush_rate_limits(url))
    # The connection came from ::1; its counter is its /64's, holding all three requests.
    assert keys == {b"saas_ratelimit:sign-in:::/64": b"3"}


async def _rate_limit_keys(url: str) -> dict[bytes, object]:
    client = aioredis.from_url(url)
    try:
        return {
            key: await client.get(key) async for key in client.scan_iter(match="saas_ratelimit:*")
        }
    finally:
        await client.aclose()


def test_a_server_that_gives_no_client_address_refuses_sign_in(
    tmp_path: Path, migrated_sqlite_template: Path
) -> None:
    # On a Unix socket (with no proxy headers trusted) the server knows no client address.
    settings = _settings(tmp_path, migrated_sqlite_template)
    socket_path = str(tmp_path / "app.sock")
    with serve(create_app(settings), uds=socket_path) as base_url:
        transport = httpx.HTTPTransport(uds=socket_path)
        with httpx.Client(transport=transport, base_url=base_url, timeout=10) as client:
            page = client.get("/login", headers={"accept": "text/html"})
            problem = client.get("/login", headers={"accept": "application/json"})
            other = client.get("/health")
    assert page.status_code == 400, page.text[:300]
    assert "cannot tell which network your request comes from" in page.text
    assert problem.status_code == 400
    assert problem.headers["content-type"] == "application/problem+json"
    assert other.status_code == 200  # only sign-in needs a counter
