"""Hostile and malformed input over real HTTP, on both databases: out-of-range page bounds,
control characters (NUL above all) in queries, paths and bodies, JSON that is not UTF-8, SAML
metadata pointing at `javascript:` or the cloud metadata address. Each is a clear 4xx -- a
problem document on /api/, an error page for the dashboard -- and nothing is written, sent to
Auth0 or mailed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from saas.db.config import create_sqlalchemy_config
from saas.db.models import AuditEvent, EnterpriseConnection, Invitation, OutboxJob, Project
from tests.support.certificates import pem_body, self_signed_pem
from tests.support.stack import Browser, Stack
from tests.support.tokens import access_token_for

ACME = "org_AcmeDemo00000001"
PROBLEM = "application/problem+json"


pytestmark = pytest.mark.stack(outbox_poll_seconds=0.2)


@pytest.fixture
def alice(stack: Stack) -> Browser:
    browser = stack.browser()
    browser.login("alice@acme.example")
    return browser


@pytest.fixture
def api(stack: Stack, alice: Browser) -> httpx.Client:
    token = access_token_for(alice, ACME)
    return httpx.Client(
        base_url=stack.app_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


async def _rows(stack: Stack, statement: Any) -> list[Any]:
    config = create_sqlalchemy_config(stack.settings)
    try:
        async with config.get_session() as session:
            return list((await session.execute(statement)).scalars())
    finally:
        await config.get_engine().dispose()


def rows(stack: Stack, statement: Any) -> list[Any]:
    return asyncio.run(_rows(stack, statement))


def written(stack: Stack) -> dict[str, list[Any]]:
    """Everything a refused request could have left behind."""
    return {
        "projects": sorted(rows(stack, select(Project.name))),
        "invitations": sorted(rows(stack, select(Invitation.email))),
        "audit": sorted(rows(stack, select(AuditEvent.action))),
        "outbox": sorted(rows(stack, select(OutboxJob.kind))),
        "connections": sorted(str(i) for i in rows(stack, select(EnterpriseConnection.id))),
    }


def csrf(browser: Browser) -> dict[str, str]:
    token = browser.client.cookies.get("saas_csrf")
    assert token
    return {"x-csrftoken": token}


def assert_problem(response: httpx.Response, status: int, words: str) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert words in body["detail"], body
    return body


def assert_error_page(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, (response.request.url, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    # The card dashboard.js reads to show an htmx request's refusal as a toast.
    assert 'class="card card--narrow error-card"' in response.text
    assert words in response.text


# ---- page bounds -------------------------------------------------------------------------


OUT_OF_RANGE = [
    (path, params)
    for path in ("/api/v1/orgs/acme/projects", "/api/v1/orgs/acme/invitations")
    for params in (
        {"limit": 2**64},
        {"limit": 2**70},
        {"limit": -1},
        {"limit": 0},
        {"limit": 101},
        {"limit": 1_000_000},
        {"offset": 2**64},
        {"offset": -(2**70)},
        {"offset": -1},
        {"offset": 1_000_001},
    )
] + [
    ("/api/v1/orgs/acme/members", {"limit": 1_000_000}),
    ("/api/v1/orgs/acme/members", {"limit": -5}),
    ("/api/v1/orgs/acme/members", {"limit": 2**64}),
]


def test_page_bounds_outside_the_documented_range_are_422(api: httpx.Client) -> None:
    for path, params in OUT_OF_RANGE:
        (parameter,) = params
        body = assert_problem(api.get(path, params=params), 422, parameter)
        # Only the parameter at fault is named (Litestar once added the `org` path parameter).
        assert [e["key"] for e in body["errors"]] == [parameter], (path, params)
        assert "org" not in body["detail"], body


def parameters(spec: dict[str, Any], path: str) -> dict[str, Any]:
    return {p["name"]: p["schema"] for p in spec["paths"][path]["get"]["parameters"]}


def test_page_bounds_at_the_limits_are_served_and_documented(
    stack: Stack, api: httpx.Client
) -> None:
    for path in ("/api/v1/orgs/acme/projects", "/api/v1/orgs/acme/invitations"):
        for params in ({"limit": 1, "offset": 0}, {"limit": 100, "offset": 1_000_000}):
            page = api.get(path, params=params)
            assert page.status_code == 200, page.text
            assert page.json()["limit"] == params["limit"]
    assert len(api.get("/api/v1/orgs/acme/members", params={"limit": 100}).json()["items"]) == 4

    spec = httpx.get(stack.app_url + "/api/docs/openapi.json").json()
    projects = parameters(spec, "/api/v1/orgs/{org}/projects")
    assert (projects["limit"]["minimum"], projects["limit"]["maximum"]) == (1, 100)
    assert (projects["offset"]["minimum"], projects["offset"]["maximum"]) == (0, 1_000_000)
    assert projects["q"]["maxLength"] == 200
    assert "\\x00-\\x1f" in projects["q"]["pattern"]
    members = parameters(spec, "/api/v1/orgs/{org}/members")
    assert members["after"]["pattern"] == "^[A-Za-z0-9_-]*$"
    assert members["limit"]["maximum"] == 100
    schemas = spec["components"]["schemas"]
    for schema, field in (("ProjectIn", "name"), ("InvitationIn", "email"), ("RoleChange", "role")):
        assert "\\x00-\\x1f" in schemas[schema]["properties"][field]["pattern"], schema
        assert "maxLength" in schemas[schema]["properties"][field], schema


# ---- control characters in the address -----------------------------------------------------


# ---- search terms ------------------------------------------------------------------------


def test_search_wildcards_and_the_escape_character_match_only_themselves(
    api: httpx.Client,
) -> None:
    """`%`, `_`, `/` and `\\` in a search are plain characters (saas/db/lists.py escapes them),
    in an offset list (projects) and a keyset list (members): `%` is not "anything"."""
    for name in ("50% off", "500 days", "a_b", "axb", "back\\slash", "slash/ed", "s//x"):
        created = api.post("/api/v1/orgs/acme/projects", json={"name": name})
        assert created.status_code == 201, created.text

    def names(q: str) -> list[str]:
        body = api.get("/api/v1/orgs/acme/projects", params={"q": q}).json()
        assert set(body) == {"items", "limit", "offset", "total"}  # the public page shape
        assert body["total"] == len(body["items"]), body
        return [project["name"] for project in body["items"]]

    assert names("%") == ["50% off"]
    assert names("0% OFF") == ["50% off"]  # and still ignoring case
    assert names("50") == ["50% off", "500 days"]
    assert names("_") == ["a_b"]
    assert names("/") == ["s//x", "slash/ed"]
    assert names("//") == ["s//x"]
    assert names("/%") == []
    assert names("\\") == ["back\\slash"]
    for q in ("%", "_", "/"):
        members = api.get("/api/v1/orgs/acme/members", params={"q": q}).json()
        assert (members["total"], members["items"]) == (0, []), q


def test_control_characters_in_api_queries_and_paths_are_400(
    stack: Stack, api: httpx.Client
) -> None:
    before = written(stack)
    for path, params, words in [
        ("/api/v1/orgs/acme/projects", {"q": "a\x00b"}, "`q`"),
        ("/api/v1/orgs/acme/members", {"q": "a\x00b"}, "`q`"),
        ("/api/v1/orgs/acme/members", {"after": "a\x00b"}, "`after`"),
        ("/api/v1/orgs/acme/members", {"before": "\x00"}, "`before`"),
        ("/api/v1/orgs/acme/members", {"sort": "name\x00"}, "`sort`"),
        ("/api/v1/orgs/acme/projects", {"q": "line\nbreak"}, "`q`"),
    ]:
        assert_problem(api.get(path, params=params), 400, words)
    assert_problem(api.get("/api/v1/orgs/acme%00/projects"), 400, "address")
    assert_problem(api.get("/api/v1/orgs/acme%00/members"), 400, "address")
    assert_problem(api.get("/api/v1/orgs/acme/projects?q=%FF"), 400, "not valid UTF-8")
    assert written(stack) == before


@pytest.mark.parametrize("htmx", [False, True])
def test_control_characters_in_dashboard_queries_and_paths_are_400(
    stack: Stack, alice: Browser, htmx: bool
) -> None:
    headers = {"HX-Request": "true"} if htmx else {}
    for path, params in [
        ("/o/acme/projects/", {"q": "a\x00b"}),
        ("/o/acme/members/", {"q": "a\x00b"}),
        ("/o/acme/members/", {"after": "a\x00b"}),
        ("/o/acme/audit/", {"action": "member.added\x00"}),
        ("/o/acme/audit/", {"actor": "a\x00b"}),
        ("/o/acme/audit/", {"before": "2026-01-01T00:00:00+00:00_\x00"}),
        ("/admin/", {"q": "\x00"}),
    ]:
        response = alice.get(path, params=params, headers=headers)
        assert_error_page(response, 400, "control character")
    for path in ("/o/acme%00/", "/o/acme%00/projects/", "/o/acme%00/members/"):
        assert_error_page(alice.get(path, headers=headers), 400, "control character")
    # Anonymously too: the sign-in page of a slug with a NUL.
    assert_error_page(stack.browser().get("/o/acme%00/login"), 400, "control character")


# ---- control characters in bodies ----------------------------------------------------------


def mailbox(stack: Stack) -> list[dict[str, Any]]:
    inbox = httpx.get(stack.idp_url + "/__dev/mailbox.json", timeout=10).json()
    return list(inbox["messages"] if isinstance(inbox, dict) else inbox)


def test_control_characters_in_bodies_are_refused_and_nothing_is_written_or_mailed(
    stack: Stack, alice: Browser, api: httpx.Client
) -> None:
    project = api.post("/api/v1/orgs/acme/projects", json={"name": "Roadmap"})
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    members = api.get("/api/v1/orgs/acme/members").json()["items"]
    bob = next(m for m in members if m["email"] == "bob@acme.example")
    mail_before = {m["id"] for m in mailbox(stack)}
    before = written(stack)

    for method, path, body, field in [
        ("POST", "/api/v1/orgs/acme/projects", {"name": "a\x00b"}, "name"),
        ("POST", "/api/v1/orgs/acme/projects", {"name": "tab\there"}, "name"),
        ("PATCH", f"/api/v1/orgs/acme/projects/{project_id}", {"name": "x\x00"}, "name"),
        ("POST", "/api/v1/orgs/acme/invitations", {"email": "a\x00b@example.org"}, "email"),
        ("POST", "/api/v1/orgs/acme/invitations", {"email": "a@acme.example\x00"}, "email"),
        (
            "POST",
            "/api/v1/orgs/acme/invitations",
            {"email": "dan@acme.example", "role": "admin\x00"},
            "role",
        ),
        ("PATCH", f"/api/v1/orgs/acme/members/{bob['id']}", {"role": "admin\x00"}, "role"),
    ]:
        response = api.request(method, path, json=body)
        problem = assert_problem(response, 422, "must not contain control characters")
        assert [e["key"] for e in problem["errors"]] == [field]

    for path, form in [
        ("/o/acme/projects/", {"name": "a\x00b"}),
        (f"/o/acme/projects/{project_id}/rename", {"name": "a\x00b"}),
        ("/o/acme/members/invitations/", {"emails": "a\x00b@example.org"}),
        ("/o/acme/members/invitations/", {"emails": "ok@acme.example, c\x00d@acme.example"}),
        ("/o/acme/members/invitations/", {"email": "a\x00b@example.org"}),
        (f"/o/acme/members/{bob['id']}/role", {"role": "admin\x00"}),
    ]:
        for headers in (csrf(alice), {**csrf(alice), "HX-Request": "true"}):
            response = alice.client.post(stack.app_url + path, data=form, headers=headers)
            assert_error_page(response, 400, "must not contain control characters")

    assert written(stack) == before
    # The outbox delivers in order: once an invitation sent after the refused ones has reached
    # the dev IdP's mailbox, any of theirs would have too.
    sentinel = api.post("/api/v1/orgs/acme/invitations", json={"email": "carol@acme.example"})
    assert sentinel.status_code == 201, sentinel.text
    deadline = time.monotonic() + 20
    while not any(m["to"] == "carol@acme.example" for m in mailbox(stack)):
        assert time.monotonic() < deadline, "the sentinel invitation was never mailed"
        time.sleep(0.2)
    new_mail = [m["to"] for m in mailbox(stack) if m["id"] not in mail_before]
    assert new_mail == ["carol@acme.example"]


def test_json_that_is_not_utf8_is_400_and_writes_nothing(stack: Stack, api: httpx.Client) -> None:
    members = api.get("/api/v1/orgs/acme/members").json()["items"]
    bob = next(m for m in members if m["email"] == "bob@acme.example")
    before = written(stack)
    for method, path, raw in [
        ("POST", "/api/v1/orgs/acme/projects", b'{"name": "caf\xe9"}'),
        ("POST", "/api/v1/orgs/acme/projects", b'{"name": "\xff\xfe"}'),
        ("POST", "/api/v1/orgs/acme/invitations", b'{"email": "\xc3(@acme.example"}'),
        ("PATCH", f"/api/v1/orgs/acme/members/{bob['id']}", b'{"role": "adm\xedn"}'),
    ]:
        response = api.request(
            method, path, content=raw, headers={"content-type": "application/json"}
        )
        assert_problem(response, 400, "not valid UTF-8")
    assert written(stack) == before
    assert api.get("/api/v1/orgs/acme/members").json()["items"] == members


# ---- SAML metadata endpoints ----------------------------------------------------------------


def metadata(*endpoints: str) -> str:
    return f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.initech.example/saml">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
      <ds:X509Data><ds:X509Certificate>{pem_body(self_signed_pem("idp.initech.example"))}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    {"".join(endpoints)}
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"""


def sso(location: str, binding: str = "HTTP-Redirect") -> str:
    return (
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:'
        f'{binding}" Location="{location}"/>'
    )


GOOD = "https://idp.initech.example/sso"


UNSAFE_METADATA = [
    (sso("javascript:alert(document.cookie)"),),
    (sso("http://169.254.169.254/latest/meta-data/iam/security-credentials/"),),
    (sso(" JaVaScRiPt:alert(1)"),),
    (sso(GOOD), sso("javascript:alert(1)", "HTTP-POST")),
    (
        sso(GOOD),
        '<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"'
        f' Location="{GOOD}" ResponseLocation="http://169.254.169.254/"/>',
    ),
]


def test_saml_metadata_with_an_unsafe_endpoint_is_refused_and_not_sent_to_auth0(
    stack: Stack,
) -> None:
    olivia = stack.browser()
    olivia.login("olivia@ops.example")
    assert olivia.follow(olivia.get("/o/initech/login?silent=true")).status_code == 200
    before = written(stack)
    with stack.management() as management:
        connections_before = management.get("/connections").json()
    for endpoints in UNSAFE_METADATA:
        response = olivia.client.post(
            stack.app_url + "/o/initech/settings/sso/",
            data={
                "strategy": "samlp",
                "display_name": "Initech",
                "metadata_xml": metadata(*endpoints),
            },
            headers=csrf(olivia),
        )
        assert response.status_code == 422, (endpoints, response.text[:500])
        assert "must be an https:// URL" in response.text
    assert written(stack) == before
    time.sleep(0.5)  # two outbox polls: nothing may reach the dev IdP
    with stack.management() as management:
        assert management.get("/connections").json() == connections_before


def test_a_body_that_fails_validation_names_only_its_own_fields(api: httpx.Client) -> None:
    """Litestar re-checks each signature field to name the bad one; the `org` path parameter,
    which the tenant dependency consumes, must not come back as a phantom error."""
    for body in ({}, {"name": 5}, {"name": "a\x00b"}):
        answer = api.post("/api/v1/orgs/acme/projects", json=body)
        assert answer.status_code == 422, answer.text
        problem = answer.json()
        assert "org" not in [e["key"] for e in problem["errors"]], problem
        assert "org:" not in problem["detail"], problem
