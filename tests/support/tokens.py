"""Real access tokens from the dev IdP, the way an API client of the tenant would get them."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.stack import Browser


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def access_token_for(browser: Browser, auth0_org_id: str, scope: str = "openid") -> str:
    """Authorization code + PKCE with the signed-in browser's IdP session (prompt=none)."""
    settings = browser.stack.settings
    verifier, challenge = pkce_pair()
    response = browser.client.get(
        browser.stack.idp_url + "/authorize",
        params={
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
            "prompt": "none",
        },
    )
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
