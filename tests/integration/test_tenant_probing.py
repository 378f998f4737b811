"""Which organizations exist cannot be probed: an organization the caller may not see and one
that does not exist get the same answer, from the API (with any valid token) and from the
anonymous sign-in links."""

from __future__ import annotations

import statistics
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.stack import Stack
from tests.support.tokens import access_token_for

GLOBEX = "org_GlobexDemo000002"


def _problem(response: httpx.Response) -> dict[str, object]:
    body = dict(response.json())
    body.pop("instance")  # the path asked for, echoed back
    return body


def test_api_answers_another_and_an_unknown_organization_alike(stack: Stack) -> None:
    browser = stack.browser()
    browser.login("gina@globex.example")
    token = access_token_for(browser, GLOBEX)
    browser.close()
    client = httpx.Client(
        base_url=stack.app_url, headers={"authorization": f"Bearer {token}"}, timeout=10
    )
    assert client.get("/api/v1/orgs/globex/members").status_code == 200
    pairs = [
        ("GET", "/api/v1/orgs/acme/members", "/api/v1/orgs/no-such-org/members"),
        ("GET", "/api/v1/orgs/org_AcmeDemo00000001", "/api/v1/orgs/org_NoSuchOrg0000000009"),
        ("GET", "/api/v1/orgs/acme/projects", "/api/v1/orgs/no-such-org/projects"),
        ("POST", "/api/v1/orgs/acme/projects", "/api/v1/orgs/no-such-org/projects"),
    ]
    for method, existing, unknown in pairs:
        body = {"name": "Probe"} if method == "POST" else None
        seen = client.request(method, existing, json=body)
        missing = client.request(method, unknown, json=body)
        assert seen.status_code == missing.status_code == 404, (existing, seen.text)
        assert seen.headers["content-type"] == missing.headers["content-type"]
        assert _problem(seen) == _problem(missing)
    # Both answers come from the same single query, so they take the same time.
    timings: dict[str, list[float]] = {"existing": [], "unknown": []}
    for _ in range(15):
        for kind, path in (("existing", pairs[0][1]), ("unknown", pairs[0][2])):
            started = time.perf_counter()
            client.get(path)
            timings[kind].append(time.perf_counter() - started)
    client.close()
    existing_ms = statistics.median(timings["existing"]) * 1000
    unknown_ms = statistics.median(timings["unknown"]) * 1000
    print(f"median: existing {existing_ms:.1f} ms, unknown {unknown_ms:.1f} ms")
    assert abs(existing_ms - unknown_ms) < 10 + 0.5 * max(existing_ms, unknown_ms)


def _start(stack: Stack, path: str) -> tuple[httpx.Response, dict[str, list[str]]]:
    browser = stack.browser()
    response = browser.get(path)
    location = response.headers.get("location", "")
    browser.close()
    return response, parse_qs(urlsplit(location).query)


@pytest.mark.parametrize(
    ("existing", "unknown"),
    [
        ("/o/acme/login", "/o/no-such-org/login"),
        ("/o/acme/login?silent=true", "/o/no-such-org/login?silent=true"),
        ("/o/acme/login?next=/o/acme/projects", "/o/no-such-org/login?next=/o/acme/projects"),
        ("/login?organization=acme", "/login?organization=no-such-org"),
    ],
)
def test_anonymous_sign_in_links_answer_alike(stack: Stack, existing: str, unknown: str) -> None:
    seen, seen_params = _start(stack, existing)
    missing, missing_params = _start(stack, unknown)
    assert seen.status_code == missing.status_code == 303, (unknown, missing.text)
    assert seen.content == missing.content
    authorize = stack.idp_url + "/authorize?"
    assert seen.headers["location"].startswith(authorize)
    assert missing.headers["location"].startswith(authorize)
    # The same sign-in is started; only the organization the IdP is asked for differs (and for
    # one that exists, the IdP's own page names it anyway).
    assert set(seen_params) - {"organization"} == set(missing_params)
    assert "organization" not in missing_params
    assert {k for k in seen.cookies} == {k for k in missing.cookies}


def test_silent_sign_in_for_an_unknown_name_falls_back_to_a_plain_sign_in(stack: Stack) -> None:
    browser = stack.browser()
    page = browser.follow(browser.get("/o/no-such-org/login?silent=true"))
    assert page.status_code == 200, page.text
    assert str(page.url).startswith(stack.idp_url + "/u/login")
    browser.close()
