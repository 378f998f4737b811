"""When Redis (sessions, sign-in rate limits) goes away: /health says so by name, pages that
need it answer a clear 503, and everything recovers when it comes back.

A real redis-server of the test's own, on its own port, is stopped and started again; it keeps
an append-only file, so the signed-in session survives the outage as it would in production.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

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
def redis_server(port: int, data_dir: Path, *, persistent: bool = True) -> Iterator[None]:
    binary = shutil.which("redis-server")
    if binary is None:
        if in_ci():
            pytest.fail("redis-server is not installed (CI=true: this test must run)")
        pytest.skip("redis-server is not installed")
    process = subprocess.Popen(
        [
            binary,
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir)),
            "--save",
            "",
            *(
                ("--appendonly", "yes", "--appendfsync", "always")
                if persistent
                else ("--appendonly", "no")
            ),
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


def assert_clear_503(response: httpx.Response, *, html: bool) -> None:
    """The session store's 503, as an error page or problem details, with every header an
    answer carries: not the server's bare 500."""
    where = (str(response.url), response.status_code, response.text[:300])
    assert response.status_code == 503, where
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers.get("x-request-id", "")), where
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", "")
    assert response.headers.get("x-frame-options") == "DENY"
    assert response.headers.get("x-content-type-options") == "nosniff"
    if html:
        assert response.headers["content-type"].startswith("text/html")
        assert "Temporarily unavailable" in response.text
        assert "Sign-in and sessions are not reachable right now" in response.text
    else:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == "Temporarily unavailable"


# Redis answering reads but refusing writes, and how to undo it. Both apply to the test's own
# redis-server only (CONFIG SET and REPLICAOF are server-wide).
WRITE_REFUSALS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # maxmemory-policy is noeviction by default: every write is refused with OOM.
    "out of memory": (("CONFIG", "SET", "maxmemory", "1"), ("CONFIG", "SET", "maxmemory", "0")),
    # A replica of a master that is not there: it serves its data and refuses every write.
    "read-only replica": (("REPLICAOF", "127.0.0.1", "9"), ("REPLICAOF", "NO", "ONE")),
}


@pytest.mark.parametrize("refusal", list(WRITE_REFUSALS))
def test_redis_refusing_writes_is_named_and_answered_clearly(
    refusal: str, tmp_path: Path, migrated_sqlite_template: Path
) -> None:
    database = tmp_path / "app.db"
    shutil.copyfile(migrated_sqlite_template, database)
    port = free_port()
    settings = stack_settings(
        f"sqlite+aiosqlite:///{database}", tmp_path, redis_url=f"redis://127.0.0.1:{port}/0"
    )
    refuse, undo = WRITE_REFUSALS[refusal]
    with redis_server(port, tmp_path, persistent=False), running_stack(settings) as stack:
        browser = stack.browser()
        assert browser.login("alice@acme.example").status_code == 200
        anonymous = httpx.Client(base_url=stack.app_url, timeout=10)
        control = redis.Redis(port=port)
        control.execute_command(*refuse)
        try:
            with pytest.raises(redis.RedisError):
                control.set("saas-test-probe", "1")  # the refusal is in force
            health = anonymous.get("/health")
            assert health.status_code == 503, health.text
            assert health.json()["checks"] == {"database": "ok", "redis": "failed"}
            # A signed-in page reads its session (allowed) and saves it on the way out, once
            # its last-seen second has moved (an unchanged session is not written again).
            time.sleep(1.05)
            assert_clear_503(browser.get("/o/acme/", headers={"accept": "text/html"}), html=True)
            assert_clear_503(
                browser.get("/o/acme/", headers={"accept": "application/json"}), html=False
            )
            # Counting a sign-in attempt is a write.
            assert_clear_503(anonymous.get("/login", headers={"accept": "text/html"}), html=True)
        finally:
            control.execute_command(*undo)
        assert anonymous.get("/health").status_code == 200
        assert browser.get("/o/acme/").status_code == 200  # still signed in
        assert anonymous.get("/login").status_code == 200
        control.close()
        anonymous.close()
        browser.close()


@contextmanager
def writes_refused(*directories: Path) -> Iterator[None]:
    """No file can be created in `directories`, by anyone: the tests may run as root, whom
    permissions do not stop, so as root the directories are made immutable instead."""
    as_root = os.geteuid() == 0
    chattr = shutil.which("chattr")
    if as_root and chattr is None:
        pytest.fail("running as root without chattr: cannot make a directory refuse writes")
    done: list[Path] = []
    try:
        for directory in directories:
            if as_root:
                subprocess.run([chattr, "+i", str(directory)], check=True)  # type: ignore[list-item]
            else:
                directory.chmod(0o555)
            done.append(directory)
        for directory in directories:
            try:
                descriptor, probe = tempfile.mkstemp(dir=directory)
            except OSError:
                continue
            os.close(descriptor)
            os.unlink(probe)
            pytest.fail(f"{directory} still accepts new files (filesystem without chattr +i?)")
        yield
    finally:
        for directory in done:
            if as_root:
                subprocess.run([chattr, "-i", str(directory)], check=True)  # type: ignore[list-item]
            else:
                directory.chmod(0o755)


def test_file_stores_refusing_writes_are_answered_clearly(
    tmp_path: Path, migrated_sqlite_template: Path
) -> None:
    database = tmp_path / "app.db"
    shutil.copyfile(migrated_sqlite_template, database)
    settings = stack_settings(f"sqlite+aiosqlite:///{database}", tmp_path)
    assert settings.redis_url is None
    stores = settings.state_dir / "stores"
    with running_stack(settings) as stack:
        browser = stack.browser()
        assert browser.login("alice@acme.example").status_code == 200
        anonymous = httpx.Client(base_url=stack.app_url, timeout=10)
        with writes_refused(stores / "sessions", stores / "ratelimit"):
            # The session cannot be saved (it is renewed on every signed-in request), and a
            # sign-in attempt cannot be counted: neither may be answered as if it had been.
            assert_clear_503(browser.get("/o/acme/", headers={"accept": "text/html"}), html=True)
            assert_clear_503(anonymous.get("/login", headers={"accept": "text/html"}), html=True)
            assert_clear_503(
                anonymous.get("/login", headers={"accept": "application/json"}), html=False
            )
        assert browser.get("/o/acme/").status_code == 200  # still signed in
        assert anonymous.get("/login").status_code == 200
        anonymous.close()
        browser.close()
