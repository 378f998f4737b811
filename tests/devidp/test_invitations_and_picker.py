"""Invitation acceptance (through the mailbox) and the organization picker."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt

from saas.devidp.seed import ROLE_IDS

from .conftest import APP_BASE, REQUIRE_ORG_CLIENT, DevIdpServer
from .helpers import follow_to_page, pkce_pair, query_of, sign_in, submit_form

INITECH = "org_InitechDemo00003"


def invite(
    devidp: DevIdpServer, mgmt: httpx.Client, email: str, org: str = INITECH
) -> dict[str, str]:
    response = mgmt.post(
        f"/organizations/{org}/invitations",
        json={
            "inviter": {"name": "Olivia Ortiz"},
            "invitee": {"email": email},
            "client_id": devidp.settings.auth0_client_id,
            "roles": [ROLE_IDS["admin"]],
        },
    )
    # Auth0 answers 200 to a created invitation (saas/devidp/management/invitations.py).
    assert response.status_code == 200, response.text
    return response.json()


def authorize_from_invitation(devidp: DevIdpServer, invitation_url: str) -> str:
    """What the app does at /invitation: forward invitation + organization to /authorize."""
    params = {k: v[0] for k, v in parse_qs(urlsplit(invitation_url).query).items()}
    _, challenge = pkce_pair()
    return (
        devidp.base_url
        + "/authorize?"
        + urlencode(
            {
                "client_id": devidp.settings.auth0_client_id,
                "redirect_uri": APP_BASE + "/callback",
                "response_type": "code",
                "scope": "openid email",
                "state": "inv-state",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "organization": params["organization"],
                "invitation": params["invitation"],
            }
        )
    )


def test_invitation_via_mailbox_and_signup(
    devidp: DevIdpServer, mgmt: httpx.Client, browser: httpx.Client
) -> None:
    inv = invite(devidp, mgmt, "Pat.New@Example.org")
    mail = httpx.get(devidp.base_url + "/__dev/mailbox.json").json()["messages"]
    message = next(m for m in mail if m["to"] == "pat.new@example.org")
    assert message["link"] == inv["invitation_url"]
    assert "Initech" in message["subject"]
    page = httpx.get(devidp.base_url + "/__dev/mailbox")
    assert "pat.new@example.org" in page.text
    assert inv["invitation_url"].replace("&", "&amp;") in page.text

    login_page = follow_to_page(browser, authorize_from_invitation(devidp, message["link"]))
    assert "pat.new@example.org" in login_page.text  # login_hint prefilled with the invitee
    assert "invited to join Initech by Olivia Ortiz" in login_page.text
    state = re.search(r"state=([A-Za-z0-9_-]+)", login_page.text)[1]  # type: ignore[index]
    signup = follow_to_page(browser, f"/u/signup?state={state}")
    left = submit_form(
        browser,
        signup,
        {"email": "pat.new@example.org", "password": "a-long-password", "name": "Pat New"},
    )
    assert left.status_code == 302
    assert "code" in query_of(left), left.headers.get("location")
    members = mgmt.get(
        f"/organizations/{INITECH}/members", params={"fields": "user_id,email,roles"}
    ).json()
    pat = next(m for m in members if m["email"] == "pat.new@example.org")
    assert pat["roles"] == [{"id": ROLE_IDS["admin"], "name": "admin"}]
    # Accepted invitations are consumed.
    assert mgmt.get(f"/organizations/{INITECH}/invitations/{inv['id']}").status_code == 404


def test_invitation_email_mismatch(
    devidp: DevIdpServer, mgmt: httpx.Client, browser: httpx.Client
) -> None:
    inv = invite(devidp, mgmt, "someone.else@example.org")
    left = sign_in(
        browser,
        authorize_from_invitation(devidp, inv["invitation_url"]),
        "olivia@ops.example",
        connection="Username-Password-Authentication",
    )
    query = query_of(left)
    assert query["error"] == "access_denied"
    assert query["state"] == "inv-state"
    assert "another email" in query["error_description"]


def test_invitation_of_another_organization_is_refused(
    devidp: DevIdpServer, mgmt: httpx.Client, browser: httpx.Client
) -> None:
    inv = invite(devidp, mgmt, "x@example.org")
    url = authorize_from_invitation(devidp, inv["invitation_url"]).replace(
        INITECH, "org_AcmeDemo00000001"
    )
    response = browser.get(url)
    assert query_of(response)["error"] == "invalid_request"


def test_organization_picker_for_client_requiring_organization(
    devidp: DevIdpServer, browser: httpx.Client
) -> None:
    verifier, challenge = pkce_pair()
    url = (
        devidp.base_url
        + "/authorize?"
        + urlencode(
            {
                "client_id": REQUIRE_ORG_CLIENT.client_id,
                "redirect_uri": REQUIRE_ORG_CLIENT.callbacks[0],
                "response_type": "code",
                "scope": "openid",
                "state": "pick",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
    )
    picker = sign_in(
        browser, url, "olivia@ops.example", connection="Username-Password-Authentication"
    )
    assert picker.status_code == 200
    assert "Choose an organization" in picker.text
    assert "Initech" in picker.text
    assert "Globex Corporation" in picker.text
    assert "Acme" not in picker.text  # only her memberships
    left = submit_form(browser, picker, {"organization": "org_GlobexDemo000002"})
    code = query_of(left)["code"]
    token = httpx.post(
        devidp.base_url + "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REQUIRE_ORG_CLIENT.callbacks[0],
            "code_verifier": verifier,
        },
        auth=(REQUIRE_ORG_CLIENT.client_id, REQUIRE_ORG_CLIENT.client_secret),
    ).json()
    claims = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert claims["org_id"] == "org_GlobexDemo000002"
    assert claims["aud"] == REQUIRE_ORG_CLIENT.client_id
    # prompt=none cannot pick for the user.
    silent = browser.get(url + "&prompt=none")
    assert query_of(silent)["error"] == "login_required"
