"""Signing out expires the session cookie (same name, path and flags) and ends the session in
the store, so the old id is worth nothing afterwards."""

from __future__ import annotations

import asyncio
import json
import re
from http.cookies import SimpleCookie

import httpx
import jwt
from litestar.stores.file import FileStore

from saas.app import create_app
from saas.config import Settings, load_settings
from tests.support.servers import serve
from tests.support.stack import Stack

_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def _set_cookies(response: httpx.Response, name: str) -> list[SimpleCookie]:
    found = []
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        if name in cookie:
            found.append(cookie)
    return found


def _assert_expires(response: httpx.Response, name: str, *, secure: bool) -> None:
    cookies = _set_cookies(response, name)
    assert len(cookies) == 1, response.headers.get_list("set-cookie")
    morsel = cookies[0][name]
    assert morsel["max-age"] == "0"
    assert morsel.value == ""
    assert morsel["path"] == "/"
    assert morsel["httponly"] is True
    assert morsel["samesite"].lower() == "lax"
    assert bool(morsel["secure"]) is secure
    assert not morsel["domain"]


def test_sign_out_expires_the_cookie_and_the_old_id_is_dead(stack: Stack) -> None:
    browser = stack.browser()
    browser.login("alice@acme.example")
    assert browser.get("/o/acme/").status_code == 200
    old_id = browser.client.cookies.get("saas_session")
    assert old_id
    token = _CSRF.search(browser.get("/o/acme/").text)
    assert token
    out = browser.client.post(stack.app_url + "/logout", data={"_csrf_token": token[1]})
    assert out.status_code == 303
    _assert_expires(out, "saas_session", secure=False)
    assert browser.client.cookies.get("saas_session") is None  # the browser dropped it
    # Someone who kept the old id (a copied cookie, a second tab) is signed out too.
    replay = httpx.get(stack.app_url + "/o/acme/", cookies={"saas_session": old_id}, timeout=10)
    assert replay.status_code == 303
    assert replay.headers["location"].startswith("/o/acme/login")
    browser.close()


def test_sign_out_expires_the_host_prefixed_cookie(settings: Settings) -> None:
    secure = load_settings(
        database_url=settings.database_url,
        app_env="test",
        app_base_url="https://app.example.com",
        devidp_database_url=settings.devidp_database_url,
        devidp_key_path=settings.devidp_key_path,
    )
    assert secure.secure_cookies
    with serve(create_app(secure)) as url:
        # httpx would not send Secure cookies over http, so the cookies go by hand.
        page = httpx.get(url + "/login", timeout=10)
        csrf_cookie = page.cookies.get("__Host-saas_csrf")
        token = _CSRF.search(page.text)
        assert csrf_cookie
        assert token
        out = httpx.post(
            url + "/logout",
            data={"_csrf_token": token[1]},
            headers={"cookie": f"__Host-saas_csrf={csrf_cookie}; __Host-saas_session=abc123"},
            timeout=10,
        )
    assert out.status_code == 303, out.text
    _assert_expires(out, "__Host-saas_session", secure=True)


def test_sign_out_hands_the_id_token_to_the_idp_and_lands_back(stack: Stack) -> None:
    """RP-Initiated Logout at the dev IdP's `/oidc/logout`, the end_session_endpoint its
    discovery names as Auth0's does: the ID token of the sign-in is the `id_token_hint`, kept
    in the server-side session and in no cookie; the IdP checks it and the logout URL against
    the application's Allowed Logout URLs, ends its session and sends the browser back."""
    settings = stack.settings
    browser = stack.browser()
    browser.login("alice@acme.example")
    session_id = browser.client.cookies.get("saas_session")
    assert session_id
    store = FileStore(settings.state_dir / "stores" / "sessions")
    stored = asyncio.run(store.get(session_id))
    assert stored is not None
    id_token = json.loads(stored)["id_token"]
    assert all(id_token not in (cookie.value or "") for cookie in browser.client.cookies.jar)
    key = jwt.PyJWKClient(stack.idp_url + "/.well-known/jwks.json").get_signing_key_from_jwt(
        id_token
    )
    claims = jwt.decode(
        id_token,
        key.key,
        algorithms=["RS256"],
        audience=settings.auth0_client_id,
        issuer=settings.auth0_issuer,
    )
    assert claims["sub"] == "samlp|acme-saml|alice@acme.example"

    token = _CSRF.search(browser.get("/o/acme/").text)
    assert token
    out = browser.client.post(stack.app_url + "/logout", data={"_csrf_token": token[1]})
    assert out.status_code == 303
    location = httpx.URL(out.headers["location"])
    assert str(location.copy_with(query=None)) == stack.idp_url + "/oidc/logout"
    assert dict(location.params) == {
        "client_id": settings.auth0_client_id,
        "post_logout_redirect_uri": settings.app_base_url + "/logged-out",
        "id_token_hint": id_token,
    }
    landing = browser.follow(out)
    assert str(landing.url) == stack.app_url + "/logged-out"
    assert asyncio.run(store.get(session_id)) is None
    # The IdP's session ended too: a silent sign-in now has to ask.
    silent = browser.follow(browser.get("/o/acme/login?silent=true"))
    assert "/u/login" in str(silent.url)
    browser.close()
