"""The dev IdP refuses what Auth0 refuses, and answers as Auth0 answers, where a laxer fake let
production breakers through unseen (issue 14). Each Auth0 behaviour is cited where the dev IdP
implements it (saas/devidp/management/); the revocation of machine-to-machine tokens is tested
in tests/integration/test_auth0_fidelity.py, on a dev IdP of its own (it would revoke the token
this session shares)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import jwt
import pytest

from saas.devidp.seed import ROLE_IDS
from tests.support.certificates import self_signed_pem

from .conftest import APP_BASE, DevIdpServer
from .helpers import follow_to_page, pkce_pair
from .test_management_api import token_with

ACME = "org_AcmeDemo00000001"
GLOBEX = "org_GlobexDemo000002"
ACME_SAML = "con_AcmeSamlDemo0001"
RATE_LIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


@pytest.fixture
def faults(devidp: DevIdpServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=devidp.base_url + "/__dev/faults", timeout=10) as client:
        yield client
        client.delete("")


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["statusCode"] == status
    assert body["errorCode"] == code, body
    return str(body["message"])


# ---- paging -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "checkpoint"),
    [
        (f"/organizations/{ACME}/invitations", False),
        (f"/organizations/{ACME}/members", True),
        ("/organizations", True),
        ("/roles", False),
    ],
)
def test_offset_paging_stops_at_the_first_1000_records(
    mgmt: httpx.Client, path: str, checkpoint: bool
) -> None:
    # Page 9 of 100 ends at record 1,000: allowed, even though these lists are short.
    assert mgmt.get(path, params={"page": 9, "per_page": 100}).status_code == 200
    message = error(mgmt.get(path, params={"page": 10, "per_page": 100}), 400, "invalid_paging")
    expected = "Requesting page 10 exceeds the allowed maximum of 1000 records."
    if checkpoint:
        expected += " To fetch results beyond 1000, use the checkpoint pagination method."
    assert message == expected
    # Whatever the page size: no record past the 1,000th.
    error(mgmt.get(path, params={"page": 20, "per_page": 50}), 400, "invalid_paging")
    error(mgmt.get(path, params={"page": 33, "per_page": 30}), 400, "invalid_paging")


def test_per_page_above_100_is_refused_as_auth0_words_it(mgmt: httpx.Client) -> None:
    message = error(
        mgmt.get(f"/organizations/{ACME}/invitations", params={"per_page": 101}),
        400,
        "invalid_query_string",
    )
    assert message == (
        "Query validation error: 'Value 101 is greater than maximum 100' on property per_page "
        "(Number of results per page. Defaults to 50.)"
    )
    assert mgmt.get("/roles", params={"per_page": 100}).status_code == 200


# ---- enabled connections ----------------------------------------------------------------


def test_an_enabled_connection_is_not_enabled_twice_but_patched(mgmt: httpx.Client) -> None:
    path = f"/organizations/{ACME}/enabled_connections"
    before = mgmt.get(f"{path}/{ACME_SAML}").json()["assign_membership_on_login"]
    again = mgmt.post(
        path, json={"connection_id": ACME_SAML, "assign_membership_on_login": not before}
    )
    assert again.status_code == 409, again.text
    assert mgmt.get(f"{path}/{ACME_SAML}").json()["assign_membership_on_login"] is before
    try:
        patched = mgmt.patch(f"{path}/{ACME_SAML}", json={"assign_membership_on_login": not before})
        assert patched.status_code == 200, patched.text
        assert patched.json()["assign_membership_on_login"] is (not before)
        assert mgmt.get(f"{path}/{ACME_SAML}").json()["assign_membership_on_login"] is not before
        # Only the settings may be patched, with their own types.
        assert mgmt.patch(f"{path}/{ACME_SAML}", json={"connection_id": "x"}).status_code == 400
        assert (
            mgmt.patch(f"{path}/{ACME_SAML}", json={"assign_membership_on_login": "yes"})
        ).status_code == 400
    finally:
        mgmt.patch(f"{path}/{ACME_SAML}", json={"assign_membership_on_login": before})


# ---- invitations ------------------------------------------------------------------------


def test_an_invitation_is_created_with_200_and_listed_newest_first(
    devidp: DevIdpServer, mgmt: httpx.Client
) -> None:
    path = f"/organizations/{GLOBEX}/invitations"
    ids = []
    for n in range(3):
        created = mgmt.post(
            path,
            json={
                "inviter": {"name": "Gina"},
                "invitee": {"email": f"strict-{n}@globex.example"},
                "client_id": devidp.settings.auth0_client_id,
                "roles": [ROLE_IDS["member"]],
                "send_invitation_email": False,
            },
        )
        assert created.status_code == 200, created.text
        ids.append(created.json()["id"])
        time.sleep(0.01)  # distinct created_at
    try:
        listed = [i["id"] for i in mgmt.get(path).json() if i["id"] in ids]
        assert listed == ids[::-1], "Auth0 lists invitations newest first (created_at:-1)"
        oldest_first = mgmt.get(path, params={"sort": "created_at:1"}).json()
        assert [i["id"] for i in oldest_first if i["id"] in ids] == ids
    finally:
        for invitation_id in ids:
            mgmt.delete(f"{path}/{invitation_id}")


# ---- SAML signing certificates ----------------------------------------------------------


def saml_connection(mgmt: httpx.Client, name: str, signing_cert: str) -> httpx.Response:
    return mgmt.post(
        "/connections",
        json={
            "name": name,
            "strategy": "samlp",
            "options": {
                "signInEndpoint": "https://idp.strict.example/sso",
                "signingCert": signing_cert,
            },
        },
    )


def test_saml_signing_cert_must_be_the_base64_of_the_pem(mgmt: httpx.Client) -> None:
    pem = self_signed_pem("idp.strict.example", days=30)
    der_b64 = "".join(line for line in pem.splitlines() if "CERTIFICATE" not in line)
    for wrong in (pem, der_b64, base64.b64encode(b"not a certificate").decode(), "%%%"):
        refused = saml_connection(mgmt, "strict-saml-wrong", wrong)
        assert "signingCert" in error(refused, 400, "invalid_body")
    created = saml_connection(mgmt, "strict-saml", base64.b64encode(pem.encode()).decode())
    assert created.status_code == 201, created.text
    connection = created.json()
    assert base64.b64decode(connection["options"]["signingCert"]).decode() == pem
    # The same rule on an update, where options are replaced as a whole.
    refused = mgmt.patch(
        f"/connections/{connection['id']}",
        json={"options": {"signInEndpoint": "https://idp.strict.example/sso", "signingCert": pem}},
    )
    error(refused, 400, "invalid_body")


# ---- rate-limit headers -----------------------------------------------------------------


def rate_limit(response: httpx.Response) -> tuple[int, int, int]:
    limit, remaining, reset = (int(response.headers[name]) for name in RATE_LIMIT_HEADERS)
    return limit, remaining, reset


def test_every_management_answer_carries_auth0s_rate_limit_headers(
    devidp: DevIdpServer, mgmt: httpx.Client
) -> None:
    answers = [
        mgmt.get("/roles"),
        mgmt.get(f"/organizations/{ACME}"),
        mgmt.get("/organizations/org_Nope"),  # 404
        mgmt.post("/organizations", json={"nope": 1}),  # 400
        httpx.get(devidp.base_url + "/api/v2/roles"),  # 401, no token
    ]
    assert [a.status_code for a in answers] == [200, 200, 404, 400, 401]
    for answer in answers:
        limit, remaining, reset = rate_limit(answer)
        assert limit > 0
        assert 0 <= remaining < limit
        assert time.time() - 1 <= reset <= time.time() + 2, "a UNIX time, seconds, just ahead"


def test_a_429_says_when_the_window_resets_and_needs_no_retry_after(
    faults: httpx.Client, mgmt: httpx.Client
) -> None:
    faults.post(
        "", json={"method": "GET", "path": "/api/v2/roles", "response": "429", "count": 1}
    ).raise_for_status()
    faults.post(
        "",
        json={
            "method": "GET",
            "path": "/api/v2/roles",
            "response": "429",
            "count": 1,
            "reset_after": 7,
        },
    ).raise_for_status()
    for expected_wait in (1, 7):
        limited = mgmt.get("/roles")
        assert limited.status_code == 429
        limit, remaining, reset = rate_limit(limited)
        assert remaining == 0
        assert limit > 0
        assert abs(reset - (time.time() + expected_wait)) <= 1.5
        assert "retry-after" not in limited.headers, "Auth0 documents X-RateLimit-*, not this"
    assert mgmt.get("/roles").status_code == 200


def test_revoking_m2m_tokens_needs_json(devidp: DevIdpServer) -> None:
    # (Revoking itself is tested on a dev IdP of its own; see the module's docstring.)
    form = httpx.post(devidp.base_url + "/__dev/faults/revoke-m2m-tokens", data={"x": "1"})
    assert form.status_code == 415


# ---- sessions (the ID token's `sid`) --------------------------------------------------------


def _signed_in_sid(devidp: DevIdpServer, browser: httpx.Client) -> tuple[str, str]:
    """Alice signs in; her ID token's `sid` and her refresh token."""
    from .test_code_flow import login  # the whole code flow, with Authlib

    _client, token, _nonce = login(devidp, browser, "alice@acme.example")
    claims = jwt.decode(token["id_token"], options={"verify_signature": False})
    return str(claims["sid"]), str(token["refresh_token"])


def _authorize_shows_the_sign_in_form(devidp: DevIdpServer, browser: httpx.Client) -> bool:
    _, challenge = pkce_pair()
    page = follow_to_page(
        browser,
        devidp.base_url
        + "/authorize?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": devidp.settings.auth0_client_id,
                "redirect_uri": APP_BASE + "/callback",
                "scope": "openid",
                "organization": ACME,
                "connection": "acme-saml",
                "state": "s",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        ),
    )
    return page.status_code == 200 and 'name="password"' in page.text


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_ending_a_session_needs_delete_sessions(devidp: DevIdpServer, method: str) -> None:
    path = "/sessions/some-session" + ("/revoke" if method == "POST" else "")
    headers = {"Authorization": f"Bearer {token_with(devidp, 'read:users')}"}
    response = httpx.request(method, devidp.base_url + "/api/v2" + path, headers=headers)
    message = error(response, 403, "insufficient_scope")
    assert message == "Insufficient scope, expected any of: delete:sessions"


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_a_session_id_is_at_most_50_characters_and_must_exist(
    mgmt: httpx.Client, method: str
) -> None:
    def call(session_id: str) -> httpx.Response:
        suffix = "/revoke" if method == "POST" else ""
        return mgmt.request(method, f"/sessions/{session_id}{suffix}")

    message = error(call("s" * 51), 400, "invalid_uri")
    assert "maximum 50" in message
    # 50 is allowed, and a session nobody has is a 404, not a silent success.
    error(call("s" * 50), 404, "inexistent_session")


def test_revoking_a_session_ends_sso_and_its_refresh_tokens(
    devidp: DevIdpServer, browser: httpx.Client, mgmt: httpx.Client
) -> None:
    sid, refresh_token = _signed_in_sid(devidp, browser)
    assert not _authorize_shows_the_sign_in_form(devidp, browser)  # signed in by the session
    revoked = mgmt.post(f"/sessions/{sid}/revoke")
    assert revoked.status_code == 202, revoked.text
    assert revoked.content == b""
    # The browser's next authorization asks for the password again.
    assert _authorize_shows_the_sign_in_form(devidp, browser)
    # "and all associated refresh tokens".
    refreshed = httpx.post(
        devidp.base_url + "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": devidp.settings.auth0_client_id,
            "client_secret": devidp.settings.auth0_client_secret.get_secret_value(),
            "refresh_token": refresh_token,
        },
    )
    assert refreshed.status_code in {400, 403}
    assert refreshed.json()["error"] == "invalid_grant"
    # Gone: a second revoke is a 404 (the app's client takes that as done).
    error(mgmt.post(f"/sessions/{sid}/revoke"), 404, "inexistent_session")


def test_deleting_a_session_ends_sso(
    devidp: DevIdpServer, browser: httpx.Client, mgmt: httpx.Client
) -> None:
    sid, _ = _signed_in_sid(devidp, browser)
    deleted = mgmt.delete(f"/sessions/{sid}")
    assert deleted.status_code == 202, deleted.text
    assert _authorize_shows_the_sign_in_form(devidp, browser)
