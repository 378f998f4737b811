"""The app over a real socket: health, home page, error shapes, request ids."""

from __future__ import annotations

import re

import httpx
import pytest
from litestar import get
from litestar.di import NamedDependency
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from saas.app import create_app
from saas.config import Settings, load_settings
from tests.support.servers import serve
from tests.support.stack import Stack


@pytest.fixture
def app_url(stack: Stack) -> str:
    """The shared running app (tests/conftest.py): these tests only read."""
    return stack.app_url


def test_health_checks_the_database(app_url: str) -> None:
    response = httpx.get(f"{app_url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


def test_health_reports_an_unreachable_database() -> None:
    # A port nothing listens on: the app starts, and /health says the database is down.
    settings = load_settings(database_url="postgresql://nobody@127.0.0.1:9/none", app_env="test")
    with serve(create_app(settings)) as url:
        response = httpx.get(f"{url}/health", timeout=15)
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "failed"


def test_home_page_is_html_with_sign_in(app_url: str) -> None:
    response = httpx.get(f"{app_url}/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="/login"' in response.text
    assert "/static/vendor/htmx-2.0.11.min.js" in response.text


def test_static_assets_are_served(app_url: str) -> None:
    assert httpx.get(f"{app_url}/static/css/app.css").status_code == 200
    assert httpx.get(f"{app_url}/static/vendor/htmx-2.0.11.min.js").status_code == 200


def test_unknown_page_is_a_friendly_html_404(app_url: str) -> None:
    response = httpx.get(f"{app_url}/no/such/page", headers={"accept": "text/html"})
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "Not found" in response.text
    # It says what to do, rather than repeating the title as Litestar's "Not Found".
    assert "There is nothing at this address" in response.text
    assert "Not Found" not in response.text
    assert "Traceback" not in response.text


def test_api_errors_are_problem_details(app_url: str) -> None:
    response = httpx.get(f"{app_url}/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not found"
    assert body["instance"] == "/api/v1/nothing-here"


def test_method_not_allowed_is_clear(app_url: str) -> None:
    response = httpx.post(f"{app_url}/health", headers={"accept": "application/json"})
    assert response.status_code == 405
    assert response.json()["status"] == 405


def test_the_request_id_is_always_the_apps_own(app_url: str) -> None:
    # A client's X-Request-ID is only logged beside it (tests/integration/test_every_response.py):
    # one it chose could be another request's.
    ids = [
        httpx.get(f"{app_url}/health", headers=headers).headers["x-request-id"]
        for headers in ({}, {"x-request-id": "abc-123"}, {"x-request-id": 'a"b<script>'})
    ]
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids), ids
    assert len(set(ids)) == 3


def test_security_headers_on_pages(app_url: str) -> None:
    response = httpx.get(f"{app_url}/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in response.headers  # plain http in development


def test_tenant_pages_are_not_cached(app_url: str) -> None:
    response = httpx.get(f"{app_url}/o/acme/")
    assert response.headers["cache-control"] == "no-store"


def test_hsts_when_served_over_https(settings: Settings) -> None:
    secure = load_settings(
        database_url=settings.database_url, app_env="test", app_base_url="https://app.example.com"
    )
    with serve(create_app(secure)) as url:
        response = httpx.get(f"{url}/health")
    assert response.headers["strict-transport-security"].startswith("max-age=")


def fail_on_the_way_out(app: ASGIApp) -> ASGIApp:
    """A layer that fails as the answer's start passes, as the session store's write once
    did: Litestar counts the answer as started by then and lets the exception through."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        async def failing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                raise RuntimeError("failed while the answer was leaving")
            await send(message)

        await app(scope, receive, failing_send)

    return middleware


@get("/test-only/fails-on-the-way-out", middleware=[fail_on_the_way_out], opt={"public": True})
async def fails_on_the_way_out(db_session: NamedDependency[AsyncSession]) -> dict[str, int]:
    return {"one": int(await db_session.scalar(text("SELECT 1")) or 0)}


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_an_exception_that_escapes_litestar_is_still_answered(
    settings: Settings, accept: str
) -> None:
    # No outbox worker: its polling would hold a connection of the same pool now and then.
    quiet = load_settings(
        database_url=settings.database_url, app_env="test", outbox_worker_enabled=False
    )
    app = create_app(quiet)
    app.register(fails_on_the_way_out)
    engine = app.state["db_config"].get_engine()
    with serve(app) as url:
        response = httpx.get(url + "/test-only/fails-on-the-way-out", headers={"accept": accept})
        # The database session was closed as for every answer, its connection given back.
        assert engine.pool.checkedout() == 0
    assert response.status_code == 500, response.text[:300]
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers.get("x-request-id", ""))
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    if accept == "text/html":
        assert response.headers["content-type"].startswith("text/html")
        assert "Something went wrong" in response.text
    else:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 500
    assert "failed while the answer was leaving" not in response.text
