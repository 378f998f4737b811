"""Authorization code flow with PKCE, tokens, refresh rotation, and their failure modes."""

from __future__ import annotations

import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from cryptography.hazmat.primitives.asymmetric import rsa

from saas.config import load_settings
from saas.devidp.app import create_devidp_app
from saas.devidp.keys import KeyStore
from tests.support.servers import free_port, serve

from .conftest import APP_BASE, REQUIRE_ORG_CLIENT, DevIdpServer
from .helpers import follow_to_page, pkce_pair, query_of, sign_in

CALLBACK = APP_BASE + "/callback"
ACME = "org_AcmeDemo00000001"
GLOBEX = "org_GlobexDemo000002"


def oauth_client(devidp: DevIdpServer, auth_method: str = "client_secret_post") -> OAuth2Client:
    return OAuth2Client(
        client_id=devidp.settings.auth0_client_id,
        client_secret=devidp.settings.auth0_client_secret.get_secret_value(),
        scope="openid profile email offline_access",
        redirect_uri=CALLBACK,
        code_challenge_method="S256",
        token_endpoint_auth_method=auth_method,
    )


def jwks_client(devidp: DevIdpServer) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(devidp.base_url + "/.well-known/jwks.json")


def verify(devidp: DevIdpServer, token: str, audience: str) -> dict[str, Any]:
    key = jwks_client(devidp).get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=devidp.issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )


def login(
    devidp: DevIdpServer,
    browser: httpx.Client,
    email: str,
    *,
    organization: str | None = ACME,
    connection: str | None = "acme-saml",
    auth_method: str = "client_secret_post",
) -> tuple[OAuth2Client, dict[str, Any], str]:
    """Run the whole flow with Authlib; returns the client, the token response and the nonce."""
    client = oauth_client(devidp, auth_method)
    verifier, _ = pkce_pair()
    nonce = secrets.token_urlsafe(16)
    extra = {"audience": devidp.settings.auth0_audience, "nonce": nonce}
    if organization:
        extra["organization"] = organization
    url, state = client.create_authorization_url(
        devidp.base_url + "/authorize", code_verifier=verifier, **extra
    )
    assert "code_challenge_method=S256" in url
    left = sign_in(browser, url, email, connection=connection)
    assert left.status_code == 302, left.text
    callback = left.headers["location"]
    assert callback.startswith(CALLBACK), callback
    token = client.fetch_token(
        devidp.base_url + "/oauth/token",
        authorization_response=callback,
        code_verifier=verifier,
        state=state,
    )
    return client, dict(token), nonce


def test_code_flow_with_pkce_and_verified_tokens(
    devidp: DevIdpServer, browser: httpx.Client
) -> None:
    _client, token, nonce = login(devidp, browser, "alice@acme.example")
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 86400
    assert "refresh_token" in token
    id_claims = verify(devidp, token["id_token"], devidp.settings.auth0_client_id)
    assert id_claims["nonce"] == nonce
    assert id_claims["sub"] == "samlp|acme-saml|alice@acme.example"
    assert id_claims["email"] == "alice@acme.example"
    assert id_claims["email_verified"] is True
    assert id_claims["name"] == "Alice Anderson"
    assert id_claims["picture"]
    assert id_claims["org_id"] == ACME
    assert id_claims["org_name"] == "acme"
    assert id_claims["sid"]
    assert id_claims["auth_time"] <= id_claims["iat"]
    assert jwt.get_unverified_header(token["id_token"])["alg"] == "RS256"

    at = verify(devidp, token["access_token"], devidp.settings.auth0_audience)
    assert at["aud"] == [devidp.settings.auth0_audience, devidp.base_url + "/userinfo"]
    assert at["azp"] == devidp.settings.auth0_client_id
    assert at["org_id"] == ACME
    assert set(at["scope"].split()) == {"openid", "profile", "email", "offline_access"}
    assert "ownership" in at["permissions"]
    assert "org:delete" in at["permissions"]

    info = httpx.get(
        devidp.base_url + "/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert info.status_code == 200
    assert info.json()["sub"] == id_claims["sub"]
    assert info.json()["email"] == "alice@acme.example"


def test_member_permissions_and_basic_auth(devidp: DevIdpServer, browser: httpx.Client) -> None:
    _, token, _ = login(devidp, browser, "bob@acme.example", auth_method="client_secret_basic")
    at = verify(devidp, token["access_token"], devidp.settings.auth0_audience)
    assert at["permissions"] == ["members:read", "org:read", "projects:write"]


def test_password_user_oidc_user_and_sso_across_orgs(
    devidp: DevIdpServer, browser: httpx.Client
) -> None:
    _, token, _ = login(
        devidp,
        browser,
        "olivia@ops.example",
        organization="initech",
        connection="Username-Password-Authentication",
    )
    claims = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert claims["org_name"] == "initech"
    assert claims["sub"] == "auth0|65f0c0ffee00000000000001"
    # Same browser, other organization: single sign-on, no form this time.
    client = oauth_client(devidp)
    verifier, _ = pkce_pair()
    url, _ = client.create_authorization_url(
        devidp.base_url + "/authorize", code_verifier=verifier, organization=GLOBEX, prompt="none"
    )
    silent = browser.get(url)
    assert silent.status_code == 302
    assert "code" in query_of(silent), silent.headers.get("location")
    # Gina through the simulated OIDC IdP keeps her seeded id.
    with httpx.Client(base_url=devidp.base_url) as other:
        _, token, _ = login(
            devidp, other, "gina@globex.example", organization="globex", connection="globex-oidc"
        )
    assert (
        jwt.decode(token["id_token"], options={"verify_signature": False})["sub"]
        == "oidc|globex-oidc|7d1c2f0e-gina"
    )


def _authorize_url(devidp: DevIdpServer, **params: str) -> str:
    base = {
        "client_id": devidp.settings.auth0_client_id,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "openid profile email",
        "state": "st-123",
    }
    base.update(params)
    return devidp.base_url + "/authorize?" + urlencode(base)


def _code(devidp: DevIdpServer, browser: httpx.Client, **params: str) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    url = _authorize_url(
        devidp,
        code_challenge=challenge,
        code_challenge_method="S256",
        organization=ACME,
        connection="acme-saml",
        scope="openid offline_access",
        **params,
    )
    left = sign_in(browser, url, "alice@acme.example")
    return query_of(left)["code"], verifier


def _exchange(
    devidp: DevIdpServer, code: str, verifier: str | None, **extra: str
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "client_id": devidp.settings.auth0_client_id,
        "client_secret": devidp.settings.auth0_client_secret.get_secret_value(),
        "code": code,
        "redirect_uri": CALLBACK,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    data.update(extra)
    return httpx.post(devidp.base_url + "/oauth/token", data=data)


def test_unregistered_or_missing_redirect_uri_is_a_page_not_a_redirect(
    devidp: DevIdpServer, browser: httpx.Client
) -> None:
    for params in ({"redirect_uri": "https://evil.example/cb"}, {"redirect_uri": ""}):
        response = browser.get(_authorize_url(devidp, **params))
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "Callback URL mismatch" in response.text
    unknown = browser.get(_authorize_url(devidp, client_id="nope"))
    assert unknown.status_code == 400
    assert "location" not in unknown.headers


def test_bad_parameters_go_back_to_the_redirect_uri(
    devidp: DevIdpServer, browser: httpx.Client
) -> None:
    cases = [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge": "a" * 43, "code_challenge_method": "plain"}, "invalid_request"),
        ({"organization": "no-such-org"}, "invalid_request"),
        ({"connection": "no-such-connection"}, "invalid_request"),
        ({"audience": "https://other.example"}, "access_denied"),
    ]
    for params, error in cases:
        response = browser.get(_authorize_url(devidp, **params))
        assert response.status_code == 302, params
        query = query_of(response)
        assert response.headers["location"].startswith(CALLBACK)
        assert query["error"] == error
        assert query["state"] == "st-123"
        assert query["error_description"]


def test_connection_not_enabled_for_organization(
    devidp: DevIdpServer, browser: httpx.Client
) -> None:
    response = browser.get(_authorize_url(devidp, organization=ACME, connection="globex-oidc"))
    query = query_of(response)
    assert query["error"] == "invalid_request"
    assert "not enabled" in query["error_description"]


def test_non_member_gets_access_denied(devidp: DevIdpServer, browser: httpx.Client) -> None:
    url = _authorize_url(devidp, organization=GLOBEX, connection="Username-Password-Authentication")
    # Alice cannot use the password DB (no password); sign up a fresh outsider instead.
    page = follow_to_page(browser, url)
    signup = follow_to_page(browser, "/u/signup?state=" + query_state(page.text))
    from .helpers import submit_form

    left = submit_form(
        browser,
        signup,
        {"email": "mallory@outside.example", "password": "longenough1", "name": "M"},
    )
    query = query_of(left)
    assert query["error"] == "access_denied"
    assert "is not part of the org_GlobexDemo000002 organization" in query["error_description"]
    assert query["state"] == "st-123"


def query_state(page: str) -> str:
    import re

    match = re.search(r'name="state" value="([^"]+)"', page)
    assert match, page
    return match[1]


def test_prompt_none_without_session(devidp: DevIdpServer, browser: httpx.Client) -> None:
    response = browser.get(_authorize_url(devidp, prompt="none", organization=ACME))
    query = query_of(response)
    assert query["error"] == "login_required"
    assert query["state"] == "st-123"


def test_prompt_login_forces_the_form(devidp: DevIdpServer, browser: httpx.Client) -> None:
    _code(devidp, browser)  # now signed in
    response = browser.get(
        _authorize_url(devidp, prompt="login", organization=ACME, connection="acme-saml")
    )
    assert response.status_code == 302
    assert response.headers["location"].startswith("/u/login")


def test_wrong_client_secret(devidp: DevIdpServer, browser: httpx.Client) -> None:
    code, verifier = _code(devidp, browser)
    response = _exchange(devidp, code, verifier, client_secret="wrong")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["cache-control"] == "no-store"


def test_pkce_verifier_mismatch(devidp: DevIdpServer, browser: httpx.Client) -> None:
    code, _ = _code(devidp, browser)
    other, _ = pkce_pair()
    response = _exchange(devidp, code, other)
    assert response.status_code == 403
    assert response.json()["error"] == "invalid_grant"
    missing_code, _ = _code(devidp, browser)
    assert _exchange(devidp, missing_code, None).json()["error"] == "invalid_grant"


def test_code_reuse_revokes_tokens_issued_from_it(
    devidp: DevIdpServer, browser: httpx.Client
) -> None:
    code, verifier = _code(devidp, browser)
    first = _exchange(devidp, code, verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()
    replay = _exchange(devidp, code, verifier)
    assert replay.status_code == 403
    assert replay.json()["error"] == "invalid_grant"
    info = httpx.get(
        devidp.base_url + "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 401
    refreshed = _refresh(devidp, tokens["refresh_token"])
    assert refreshed.status_code == 403
    assert refreshed.json()["error"] == "invalid_grant"


def test_expired_code(devidp: DevIdpServer, browser: httpx.Client) -> None:
    code, verifier = _code(devidp, browser)
    with sqlite3.connect(devidp.db_path) as db:
        db.execute(
            "UPDATE authorization_codes SET expires_at = ? WHERE used_at IS NULL",
            (time.time() - 1,),
        )
    response = _exchange(devidp, code, verifier)
    assert response.status_code == 403
    assert response.json()["error"] == "invalid_grant"


def test_redirect_uri_must_match_at_token_endpoint(
    devidp: DevIdpServer, browser: httpx.Client
) -> None:
    code, verifier = _code(devidp, browser)
    response = _exchange(devidp, code, verifier, redirect_uri=APP_BASE + "/other")
    assert response.json()["error"] == "invalid_grant"


def _refresh(devidp: DevIdpServer, refresh_token: str) -> httpx.Response:
    return httpx.post(
        devidp.base_url + "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": devidp.settings.auth0_client_id,
            "client_secret": devidp.settings.auth0_client_secret.get_secret_value(),
            "refresh_token": refresh_token,
        },
    )


def test_refresh_rotation_and_reuse_detection(devidp: DevIdpServer, browser: httpx.Client) -> None:
    code, verifier = _code(devidp, browser)
    first = _exchange(devidp, code, verifier).json()
    second = _refresh(devidp, first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert second.headers["cache-control"] == "no-store"
    claims = jwt.decode(rotated["id_token"], options={"verify_signature": False})
    assert claims["org_id"] == ACME
    # Reusing the old token revokes the whole family, including the newest token.
    reuse = _refresh(devidp, first["refresh_token"])
    assert reuse.status_code == 403
    assert reuse.json()["error"] == "invalid_grant"
    assert _refresh(devidp, rotated["refresh_token"]).json()["error"] == "invalid_grant"


def test_token_endpoint_errors(devidp: DevIdpServer) -> None:
    url = devidp.base_url + "/oauth/token"
    app_id = devidp.settings.auth0_client_id
    secret = devidp.settings.auth0_client_secret.get_secret_value()
    assert (
        httpx.post(
            url, data={"grant_type": "password", "client_id": app_id, "client_secret": secret}
        ).json()["error"]
        == "unsupported_grant_type"
    )
    assert httpx.post(url, data={"client_id": app_id}).json()["error"] == "invalid_request"
    cc = httpx.post(
        url,
        data={
            "grant_type": "client_credentials",
            "client_id": app_id,
            "client_secret": secret,
            "audience": devidp.settings.auth0_management_audience,
        },
    )
    assert cc.status_code == 403
    assert cc.json()["error"] == "unauthorized_client"
    m2m = {
        "grant_type": "client_credentials",
        "client_id": devidp.settings.auth0_management_client_id,
        "client_secret": devidp.settings.auth0_management_client_secret.get_secret_value(),
    }
    no_aud = httpx.post(url, data=m2m)
    assert no_aud.status_code == 403
    assert no_aud.json()["error"] == "access_denied"
    other_api = httpx.post(url, data={**m2m, "audience": "https://nope.example"})
    assert other_api.status_code == 403
    assert other_api.json()["error"] == "access_denied"
    ok = httpx.post(
        url,
        json={**m2m, "audience": devidp.settings.auth0_management_audience, "scope": "read:roles"},
    )
    assert ok.status_code == 200
    claims = jwt.decode(ok.json()["access_token"], options={"verify_signature": False})
    assert claims["gty"] == "client-credentials"
    assert claims["scope"] == "read:roles"
    assert claims["sub"] == devidp.settings.auth0_management_client_id + "@clients"
    too_much = httpx.post(
        url,
        data={
            **m2m,
            "audience": devidp.settings.auth0_management_audience,
            "scope": "delete:users",
        },
    )
    assert too_much.status_code == 403
    assert too_much.json()["error"] == "access_denied"


def test_logout_allow_list(devidp: DevIdpServer, browser: httpx.Client) -> None:
    _code(devidp, browser)
    bad = browser.get(
        "/v2/logout",
        params={"client_id": devidp.settings.auth0_client_id, "returnTo": "https://evil.example/"},
    )
    assert bad.status_code == 400
    assert "location" not in bad.headers
    # The session is gone even so: prompt=none now needs a login.
    silent = browser.get(_authorize_url(devidp, prompt="none", organization=ACME))
    assert query_of(silent)["error"] == "login_required"
    _code(devidp, browser)
    ok = browser.get(
        "/v2/logout",
        params={"client_id": devidp.settings.auth0_client_id, "returnTo": APP_BASE + "/logged-out"},
    )
    assert ok.status_code == 302
    assert ok.headers["location"] == APP_BASE + "/logged-out"
    assert (
        'devidp_session=""' in ok.headers["set-cookie"] or "Max-Age=0" in ok.headers["set-cookie"]
    )


def test_oidc_logout(devidp: DevIdpServer, browser: httpx.Client) -> None:
    code, verifier = _code(devidp, browser)
    id_token = _exchange(devidp, code, verifier).json()["id_token"]
    bad = browser.get(
        "/oidc/logout",
        params={"id_token_hint": id_token, "post_logout_redirect_uri": "https://evil.example/"},
    )
    assert bad.status_code == 400
    assert "location" not in bad.headers
    _code(devidp, browser)
    ok = browser.get(
        "/oidc/logout",
        params={
            "id_token_hint": id_token,
            "post_logout_redirect_uri": APP_BASE + "/",
            "state": "s1",
        },
    )
    assert ok.status_code == 302
    assert ok.headers["location"] == APP_BASE + "/?state=s1"


def _signed(devidp: DevIdpServer, claims: dict[str, Any], *, foreign: bool = False) -> str:
    """A token signed with the dev IdP's own key, or with another key under its kid."""
    keys = KeyStore(devidp.key_path)
    keys.load()
    key = keys.active
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048) if foreign else None
    return jwt.encode(
        claims,
        signer or key.private_key,
        algorithm="RS256",
        headers={"kid": key.kid, "typ": "JWT"},
    )


def _id_token_claims(devidp: DevIdpServer, aud: str, **changes: object) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": devidp.issuer,
        "sub": "samlp|acme-saml|alice@acme.example",
        "aud": aud,
        "iat": now,
        "exp": now + 600,
        "sid": "some-session",
    }
    claims.update(changes)
    return claims


def test_oidc_logout_checks_the_hint_as_auth0_does(
    devidp: DevIdpServer, browser: httpx.Client
) -> None:
    """https://auth0.com/docs/api/authentication/logout/oidc-logout: the hint's `aud` picks the
    application whose Allowed Logout URLs apply; a `client_id` sent as well must match it."""
    app_id = devidp.settings.auth0_client_id
    code, verifier = _code(devidp, browser)
    tokens = _exchange(devidp, code, verifier).json()
    logged_out = APP_BASE + "/logged-out"

    def logout(**params: str) -> httpx.Response:
        return browser.get("/oidc/logout", params=params)

    # An access token is no ID token: it was issued to an API, not to an application.
    bad = logout(id_token_hint=tokens["access_token"], post_logout_redirect_uri=APP_BASE + "/")
    assert bad.status_code == 400
    assert "location" not in bad.headers
    # Signed by somebody else under the dev IdP's key id.
    forged = _signed(devidp, _id_token_claims(devidp, app_id), foreign=True)
    assert logout(id_token_hint=forged, post_logout_redirect_uri=logged_out).status_code == 400
    # Another issuer, signed with the right key.
    elsewhere = _signed(devidp, _id_token_claims(devidp, app_id, iss="https://evil.example/"))
    assert logout(id_token_hint=elsewhere, post_logout_redirect_uri=logged_out).status_code == 400
    # client_id and the hint's aud disagree.
    mismatch = logout(
        id_token_hint=tokens["id_token"],
        client_id=REQUIRE_ORG_CLIENT.client_id,
        post_logout_redirect_uri=APP_BASE + "/",
    )
    assert mismatch.status_code == 400
    assert "location" not in mismatch.headers
    # The hint names the require-org client: only its own list applies, not the app's.
    other = _signed(devidp, _id_token_claims(devidp, REQUIRE_ORG_CLIENT.client_id))
    assert logged_out not in REQUIRE_ORG_CLIENT.allowed_logout_urls
    assert logout(id_token_hint=other, post_logout_redirect_uri=logged_out).status_code == 400
    ok_other = logout(id_token_hint=other, post_logout_redirect_uri=APP_BASE + "/")
    assert ok_other.status_code == 302
    assert ok_other.headers["location"] == APP_BASE + "/"
    # Expired is still a good hint (RP-Initiated Logout 1.0 §2); all three parameters agree.
    expired = _signed(devidp, _id_token_claims(devidp, app_id, iat=int(time.time()) - 7200, exp=1))
    ok = logout(id_token_hint=expired, client_id=app_id, post_logout_redirect_uri=logged_out)
    assert ok.status_code == 302
    assert ok.headers["location"] == logged_out
    # client_id alone and no post_logout_redirect_uri: the first Allowed Logout URL.
    first = logout(client_id=app_id)
    assert first.status_code == 302
    assert first.headers["location"] == APP_BASE + "/"


def test_two_sign_ins_in_one_second_may_share_an_access_token(tmp_path: Path) -> None:
    """Auth0's default access tokens carry no `jti`, so two sign-ins of one person within a
    second, with the same scopes, get the very same token. The second one was a 500 (the
    token's record already existed); now both succeed and the token works at /userinfo."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = load_settings(
        app_env="test",
        app_base_url=APP_BASE,
        devidp_base_url=base,
        devidp_database_url=f"sqlite+aiosqlite:///{tmp_path / 'devidp.db'}",
        devidp_key_path=tmp_path / "keys.json",
        auth0_domain=None,
    )
    frozen = time.time()
    server = DevIdpServer(base, settings, tmp_path / "devidp.db", tmp_path / "keys.json")
    access_tokens = []
    with serve(create_devidp_app(settings, clock=lambda: frozen), port=port):
        for _ in range(2):
            with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as browser:
                _, token, _ = login(server, browser, "alice@acme.example")
            access_tokens.append(token["access_token"])
        assert access_tokens[0] == access_tokens[1]
        info = httpx.get(
            base + "/userinfo", headers={"Authorization": f"Bearer {access_tokens[1]}"}
        )
    assert info.status_code == 200, info.text
    assert info.json()["email"] == "alice@acme.example"


def test_session_cookie_attributes(devidp: DevIdpServer, browser: httpx.Client) -> None:
    url = _authorize_url(devidp, organization=ACME, connection="acme-saml")
    page = follow_to_page(browser, url)
    from .helpers import submit_form

    response = submit_form(
        browser, page, {"email": "alice@acme.example", "password": "dev-password-123"}
    )
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("devidp_session=")
    )
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Path=/" in cookie


def test_enterprise_page_refuses_other_domains_and_post_without_csrf(
    devidp: DevIdpServer, browser: httpx.Client
) -> None:
    page = follow_to_page(
        browser, _authorize_url(devidp, organization=ACME, connection="acme-saml")
    )
    assert "Acme Corp SAML — SAML single sign-on" in page.text
    from .helpers import submit_form

    wrong = submit_form(
        browser, page, {"email": "gina@globex.example", "password": "dev-password-123"}
    )
    assert wrong.status_code == 400
    assert "@acme.example" in wrong.text
    no_csrf = browser.post(
        "/u/login/acme-saml",
        data={
            "state": query_state(page.text),
            "email": "alice@acme.example",
            "password": "dev-password-123",
        },
    )
    assert no_csrf.status_code == 403


@pytest.mark.parametrize("hint", ["bob@acme.example"])
def test_login_hint_prefills_the_form(
    devidp: DevIdpServer, browser: httpx.Client, hint: str
) -> None:
    page = follow_to_page(
        browser, _authorize_url(devidp, organization=ACME, connection="acme-saml", login_hint=hint)
    )
    assert f'value="{hint}"' in page.text
