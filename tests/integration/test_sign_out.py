"""Signing out expires the session cookie (same name, path and flags) and ends the session in
the store, so the old id is worth nothing afterwards."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import httpx

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
