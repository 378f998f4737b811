"""Real access tokens from the dev IdP, the way an API client of the tenant would get them."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import time
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pyotp

from saas.login.mfa import MFA_POLICY
from tests.support.stack import Browser, form_fields

_TOTP_SECRET = re.compile(r'data-testid="totp-secret">([A-Z2-7]+)<')
_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def access_token_for(browser: Browser, auth0_org_id: str, scope: str = "openid") -> str:
    """Authorization code + PKCE with the signed-in browser's IdP session (prompt=none)."""
    verifier, challenge = pkce_pair()
    response = browser.client.get(
        browser.stack.idp_url + "/authorize",
        params={**_authorize_params(browser, auth0_org_id, scope, challenge), "prompt": "none"},
    )
    return _redeem(browser, response, verifier)


def mfa_access_token_for(
    browser: Browser, auth0_org_id: str, totp_secret: str | None = None
) -> tuple[str, str]:
    """As an API client after multi-factor authentication: an interactive authorization with
    the multi-factor `acr_values`, the IdP's TOTP step (enrolling when `totp_secret` is None),
    then the code. Returns the access token and the TOTP secret.

    With `totp_secret` (enrolled already) the code is the next time step's, which the IdP
    accepts within its drift: the enrollment's own step is spent."""
    verifier, challenge = pkce_pair()
    params = {
        **_authorize_params(browser, auth0_org_id, "openid", challenge),
        "acr_values": MFA_POLICY,
    }
    page = browser.follow(browser.client.get(browser.stack.idp_url + "/authorize", params=params))
    assert "/u/mfa" in str(page.url), page.url
    at = time.time()
    if totp_secret is None:
        found = _TOTP_SECRET.search(page.text)
        assert found, page.text
        totp_secret = found[1]
    else:
        at += 30
    action = _FORM_ACTION.search(page.text)
    assert action
    done = browser.client.post(
        urljoin(str(page.url), html.unescape(action[1])),
        data={**form_fields(page.text), "code": pyotp.TOTP(totp_secret).at(at)},
    )
    return _redeem(browser, done, verifier), totp_secret


def _authorize_params(
    browser: Browser, auth0_org_id: str, scope: str, challenge: str
) -> dict[str, str]:
    settings = browser.stack.settings
    return {
        "response_type": "code",
        "client_id": settings.auth0_client_id,
        "redirect_uri": settings.callback_url,
        "scope": scope,
        "audience": settings.auth0_audience,
        "organization": auth0_org_id,
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }


def _redeem(browser: Browser, response: httpx.Response, verifier: str) -> str:
    """The access token for the code the IdP's redirect (`response`) carries."""
    settings = browser.stack.settings
    assert response.status_code in (302, 303), response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert "code" in query, query
    token = httpx.post(
        browser.stack.idp_url + "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": settings.callback_url,
            "client_id": settings.auth0_client_id,
            "client_secret": settings.auth0_client_secret.get_secret_value(),
            "code_verifier": verifier,
        },
        timeout=10,
    )
    assert token.status_code == 200, token.text
    return str(token.json()["access_token"])
