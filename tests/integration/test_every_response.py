"""Every answer the app gives -- from a handler, an exception handler, the CSRF or rate-limit
middleware, the router or the static files -- carries the security headers and the request id,
and is logged with the status the client received.

The app runs as `uvicorn saas.asgi:app` in its own process, so the access log is read as the
operator reads it, from the process's output. Its database is a closed port: none of these
answers needs one, and the sign-in that does gives a real 5xx without a test-only route.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from saas.config import PROJECT_ROOT
from tests.integration.test_store_outage import writes_refused
from tests.support.servers import free_port
from tests.support.stack import Stack

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Served:
    url: str
    log: Path

    def log_lines(self) -> list[str]:
        return [_ANSI.sub("", line) for line in self.log.read_text().splitlines()]

    def access_lines(self, request_id: str) -> list[dict[str, str]]:
        """The fields of the access-log lines for `request_id`."""
        return [
            dict(re.findall(r"(\w+)=(\S+)", line))
            for line in self.log_lines()
            if re.search(rf"(?<!_)request_id={request_id}\b", line) and " request " in f" {line} "
        ]

    def access_status(self, request_id: str) -> list[int]:
        """The statuses of the access-log lines for `request_id`."""
        return [int(fields["status"]) for fields in self.access_lines(request_id)]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    log = tmp_path / "app.log"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "STATE_DIR": str(tmp_path / "state"),
        "LOGIN_RATE_LIMIT_PER_MINUTE": "5",
        "OUTBOX_WORKER_ENABLED": "false",
        "APP_BASE_URL": f"http://127.0.0.1:{port}",
    }
    env.pop("REDIS_URL", None)
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "saas.asgi:app"),
                *("--port", str(port), "--app-dir", str(PROJECT_ROOT)),
            ],
            cwd=tmp_path,  # away from any .env of the checkout
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/static/css/app.css", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the app did not start:\n" + log.read_text()) from None
                time.sleep(0.2)
        yield Served(url, log)
    finally:
        process.terminate()
        process.wait(15)


def test_every_answer_has_headers_request_id_and_an_honest_log_line(served: Served) -> None:
    client = httpx.Client(base_url=served.url, timeout=15)
    login = client.get("/login")  # 1 of 5 sign-in requests a minute
    token = _CSRF.search(login.text)
    assert token
    csrf = token[1]
    cases: list[tuple[str, str, dict[str, object], int]] = [
        ("sign-in without the CSRF token", "POST", {"url": "/login"}, 403),  # 2
        (
            "sign-in whose database is down",
            "POST",
            {"url": "/login", "data": {"email": "a@b.example", "_csrf_token": csrf}},
            500,
        ),  # 3
        ("sign-in page", "GET", {"url": "/login"}, 200),  # 4
        ("sign-in page", "GET", {"url": "/login"}, 200),  # 5
        ("rate-limited sign-in page", "GET", {"url": "/login"}, 429),
        ("unknown path", "GET", {"url": "/no/such/page"}, 404),
        ("unknown tenant path", "GET", {"url": "/o/acme/no/such/page"}, 404),
        ("unknown API path", "GET", {"url": "/api/v1/nothing-here"}, 404),
        ("wrong method", "POST", {"url": "/health"}, 405),
        ("static file", "GET", {"url": "/static/css/app.css"}, 200),
        ("missing static file", "GET", {"url": "/static/no-such.css"}, 404),
        ("health with the database down", "GET", {"url": "/health"}, 503),
        # Litestar routes these as /o/acme and /o/acme/members. Absolute: relative to the
        # client's base URL, "//o/..." would name a host.
        ("tenant page, doubled slash", "GET", {"url": served.url + "//o/acme/"}, 303),
        ("tenant page, doubled slashes", "GET", {"url": served.url + "//o//acme/"}, 303),
        ("tenant members, doubled slash", "GET", {"url": served.url + "//o/acme/members"}, 303),
    ]
    problems: list[str] = []
    seen: list[tuple[str, httpx.Response, str]] = []
    for name, method, kwargs, status in cases:
        sent_id = f"t-{uuid.uuid4().hex[:12]}"
        response = client.request(method, headers={"x-request-id": sent_id}, **kwargs)  # type: ignore[arg-type]
        seen.append((name, response, sent_id))
        if response.status_code != status:
            problems.append(f"{name}: {response.status_code}, expected {status}")
    # A request without an id of its own is logged without a client's.
    unnamed = client.get("/no/such/page")
    seen.append(("unknown path, no request id sent", unnamed, ""))
    client.close()
    time.sleep(0.3)  # the last log line is written after the response's last byte
    for name, response, sent_id in seen:
        headers = response.headers
        # The id is the app's own; the one the client sent is logged beside it, not trusted.
        request_id = headers.get("x-request-id", "")
        if not re.fullmatch(r"[0-9a-f]{32}", request_id):
            problems.append(f"{name}: x-request-id {request_id!r}")
            continue
        lines = served.access_lines(request_id)
        if [line.get("client_request_id", "") for line in lines] != [sent_id]:
            problems.append(f"{name}: client request id {sent_id!r} logged as {lines}")
        # The path is logged as sent, not as Litestar normalised it.
        if [line.get("path") for line in lines] != [response.request.url.raw_path.decode()]:
            problems.append(f"{name}: path {response.request.url.raw_path!r} logged as {lines}")
        if "frame-ancestors 'none'" not in headers.get("content-security-policy", ""):
            problems.append(f"{name}: no content-security-policy")
        if headers.get("x-frame-options") != "DENY":
            problems.append(f"{name}: no x-frame-options")
        if headers.get("x-content-type-options") != "nosniff":
            problems.append(f"{name}: no x-content-type-options")
        routed = re.sub("/+", "/", response.url.path)
        if routed.startswith("/o/") and headers.get("cache-control") != "no-store":
            problems.append(f"{name}: tenant path without cache-control: no-store")
        logged = served.access_status(request_id)
        if logged != [response.status_code]:
            problems.append(f"{name}: answered {response.status_code}, access log says {logged}")
    assert not problems, f"{len(problems)} problems in {len(seen)} answers:\n" + "\n".join(problems)


@pytest.mark.stack(outbox_worker_enabled=False)
@pytest.mark.parametrize("path", ["//o/acme/", "//o/acme/members", "//o//acme/", "/o//acme//"])
def test_tenant_pages_reached_through_repeated_slashes_are_not_cached(
    stack: Stack, path: str
) -> None:
    browser = stack.browser()
    browser.login("alice@acme.example")
    page = browser.get(path)  # absolute: the path is sent as written
    browser.close()
    assert page.url.raw_path.decode() == path
    # Litestar routes it as the tenant page it is, so it is private as that page is.
    assert page.status_code == 200, page.text[:300]
    assert "Acme" in page.text
    assert page.headers.get("cache-control") == "no-store"


def test_a_store_that_refuses_writes_is_answered_and_logged_as_its_503(
    served: Served, tmp_path: Path
) -> None:
    client = httpx.Client(base_url=served.url, timeout=15)
    assert client.get("/login").status_code == 200  # the counter's directory exists now
    with writes_refused(tmp_path / "state" / "stores" / "ratelimit"):
        refused = client.get("/login", headers={"accept": "text/html"})
    client.close()
    time.sleep(0.3)
    request_id = refused.headers.get("x-request-id", "")
    assert refused.status_code == 503, refused.text[:300]
    assert "Sign-in and sessions are not reachable right now" in refused.text
    assert refused.headers.get("x-frame-options") == "DENY"
    assert served.access_status(request_id) == [503]
