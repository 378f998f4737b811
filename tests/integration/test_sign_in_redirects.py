"""The guards' way to sign-in: the path the browser asked for rides along in `next`, quoted whole,
whatever a client percent-encoded into it (CR/LF, `&`, characters outside Latin-1)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from saas.app import create_app
from saas.config import Settings
from tests.support.servers import serve

HOSTILE = [
    # (as sent on the wire, as decoded by the server)
    ("x%0D%0ASet-Cookie:%20evil=1", "x\r\nSet-Cookie: evil=1"),
    ("x%26next%3Devil%3F", "x&next=evil?"),
    ("%E2%82%AC%E2%80%A8x", "\u20ac\u2028x"),
]


@pytest.fixture
def app_url(settings: Settings) -> Iterator[str]:
    with serve(create_app(settings)) as url:
        yield url


def _get(url: str, **headers: str) -> httpx.Response:
    # httpx keeps percent-escapes as given; the server decodes them into the path.
    return httpx.get(url, headers={"accept": "text/html", **headers}, timeout=10)


def _refused_before_routing(response: httpx.Response, decoded: str) -> bool:
    # An input filter may refuse control characters in a path outright; that is fine too.
    return response.status_code == 400 and any(ord(ch) < 0x20 for ch in decoded)


@pytest.mark.parametrize(("raw", "decoded"), HOSTILE)
def test_operator_guard_quotes_the_path_it_sends_back(app_url: str, raw: str, decoded: str) -> None:
    path = f"/admin/organizations/{raw}"
    expected = "/login?next=" + quote(f"/admin/organizations/{decoded}?tab=1", safe="")
    plain = _get(f"{app_url}{path}?tab=1")
    htmx = _get(f"{app_url}{path}?tab=1", **{"hx-request": "true"})
    for response in (plain, htmx):
        assert "evil" not in response.headers.get("set-cookie", "")
        assert response.status_code < 500, response.text
    if _refused_before_routing(plain, decoded):
        return
    assert plain.status_code == 303, plain.text
    assert plain.headers["location"] == expected
    assert htmx.status_code == 204
    assert htmx.headers["hx-redirect"] == expected


@pytest.mark.parametrize(("raw", "decoded"), HOSTILE)
def test_tenant_guard_quotes_the_same_way(app_url: str, raw: str, decoded: str) -> None:
    response = _get(f"{app_url}/o/{raw}/projects")
    assert response.status_code < 500, response.text
    if _refused_before_routing(response, decoded):
        return
    assert response.status_code == 303, response.text
    assert response.headers["location"] == (
        f"/o/{quote(decoded)}/login?next=" + quote(f"/o/{decoded}/projects", safe="")
    )
