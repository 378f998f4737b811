"""The app over a real socket: health, home page, error shapes, request ids."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from saas.app import create_app
from saas.config import Settings, load_settings
from tests.support.servers import serve


@pytest.fixture
def app_url(settings: Settings) -> Iterator[str]:
    with serve(create_app(settings)) as url:
        yield url


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


def test_request_id_is_returned_and_sanitized(app_url: str) -> None:
    given = httpx.get(f"{app_url}/health", headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    hostile = httpx.get(f"{app_url}/health", headers={"x-request-id": 'a"b<script>'})
    assert hostile.headers["x-request-id"] != 'a"b<script>'
    assert len(hostile.headers["x-request-id"]) == 32


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
