"""When Redis (sessions, sign-in rate limits) goes away: /health says so by name, pages that
need it answer a clear 503, and everything recovers when it comes back.

A real redis-server of the test's own, on its own port, is stopped and started again; it keeps
an append-only file, so the signed-in session survives the outage as it would in production.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.databases import in_ci
from tests.support.servers import free_port
from tests.support.stack import running_stack, stack_settings


def _wait_for_port(port: int, *, listening: bool, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if listening:
                    return
        except OSError:
            if not listening:
                return
        time.sleep(0.05)
    raise RuntimeError(f"redis-server on {port} did not {'start' if listening else 'stop'}")


@contextmanager
def redis_server(port: int, data_dir: Path) -> Iterator[None]:
    binary = shutil.which("redis-server")
    if binary is None:
        if in_ci():
            pytest.fail("redis-server is not installed (CI=true: this test must run)")
        pytest.skip("redis-server is not installed")
    process = subprocess.Popen(
        [
            binary,
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir)),
            *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, listening=True)
        yield
    finally:
        process.terminate()
        process.wait(15)
        _wait_for_port(port, listening=False)


def test_redis_outage_is_named_and_answered_clearly(
    tmp_path: Path, migrated_sqlite_template: Path
) -> None:
    database = tmp_path / "app.db"
    shutil.copyfile(migrated_sqlite_template, database)
    port = free_port()
    data_dir = tmp_path / "redis"
    data_dir.mkdir()
    settings = stack_settings(
        f"sqlite+aiosqlite:///{database}", tmp_path, redis_url=f"redis://127.0.0.1:{port}/0"
    )
    with running_stack(settings) as stack:
        browser = stack.browser()
        with redis_server(port, data_dir):
            assert browser.login("alice@acme.example").status_code == 200
            assert browser.get("/o/acme/").status_code == 200
            health = httpx.get(stack.app_url + "/health", timeout=10)
            assert health.status_code == 200
            assert health.json()["checks"] == {"database": "ok", "redis": "ok"}

        # Redis is gone.
        health = httpx.get(stack.app_url + "/health", timeout=10)
        assert health.status_code == 503, health.text
        assert health.json() == {
            "status": "unavailable",
            "checks": {"database": "ok", "redis": "failed"},
        }
        anonymous = httpx.Client(base_url=stack.app_url, timeout=10)
        for client, path in [
            (browser.client, "/o/acme/"),
            (browser.client, "/login"),
            (anonymous, "/login"),
        ]:
            url = path if client is anonymous else stack.app_url + path
            page = client.get(url, headers={"accept": "text/html"})
            assert page.status_code == 503, (path, page.status_code, page.text[:300])
            assert page.headers["content-type"].startswith("text/html")
            assert "Temporarily unavailable" in page.text
            assert "Sign-in and sessions are not reachable right now" in page.text
        problem = browser.get("/o/acme/", headers={"accept": "application/json"})
        assert problem.status_code == 503
        assert problem.headers["content-type"] == "application/problem+json"
        assert problem.json()["title"] == "Temporarily unavailable"

        # Redis is back, with what it had: the same browser is still signed in.
        with redis_server(port, data_dir):
            health = httpx.get(stack.app_url + "/health", timeout=10)
            assert health.status_code == 200, health.text
            assert browser.get("/o/acme/").status_code == 200
            assert anonymous.get("/login").status_code == 200
        anonymous.close()
        browser.close()
