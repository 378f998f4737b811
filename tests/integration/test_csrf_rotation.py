"""The CSRF token changes when the person behind the browser does: at sign-in and at sign-out.

A token read before sign-in (by a script on a shared machine, or planted with the cookie) must
not forge requests for the person who signs in next; a token of the person who signed out must
not work for whoever uses the browser after them. Real servers, real cookies.
"""

from __future__ import annotations

import httpx

from saas.web.security import CSRF_HEADER
from tests.support.stack import Browser, Stack

COOKIE = "saas_csrf"


def token(browser: Browser) -> str:
    value = browser.client.cookies.get(COOKIE, domain="127.0.0.1")
    assert value, "no CSRF cookie"
    return value


def post(browser: Browser, path: str, csrf: str, **data: str) -> httpx.Response:
    return browser.client.post(browser.stack.app_url + path, data=data, headers={CSRF_HEADER: csrf})


def test_a_token_read_before_sign_in_is_refused_after_it(stack: Stack) -> None:
    browser = stack.browser()
    assert browser.get("/login").status_code == 200
    anonymous = token(browser)

    page = browser.login("alice@acme.example")
    assert str(page.url) == stack.app_url + "/o/acme/"
    signed_in = token(browser)
    assert signed_in != anonymous

    refused = post(browser, "/logout", anonymous)
    assert refused.status_code == 403
    # The person is told why and what to do, not "CSRF token verification failed".
    assert "Page out of date" in refused.text
    assert "Reload the page and try again. Nothing was changed." in refused.text
    assert "CSRF" not in refused.text
    assert browser.get("/o/acme/").status_code == 200  # still signed in: nothing happened

    accepted = post(browser, "/logout", signed_in)
    assert accepted.status_code == 303
    assert accepted.headers["location"].startswith(stack.idp_url + "/oidc/logout?")


def test_the_previous_persons_token_is_refused_after_sign_out(stack: Stack) -> None:
    browser = stack.browser()
    browser.login("alice@acme.example")
    alices = token(browser)

    logout = post(browser, "/logout", alices)
    assert logout.status_code == 303
    landing = browser.follow(logout)
    assert str(landing.url) == stack.app_url + "/logged-out"
    nexts = token(browser)
    assert nexts != alices

    # The next person starts a sign-in on the same browser: only the new token is accepted.
    refused = post(browser, "/login", alices, email="bob@acme.example")
    assert refused.status_code == 403
    accepted = post(browser, "/login", nexts, email="bob@acme.example")
    assert accepted.status_code == 303
    assert accepted.headers["location"].startswith(stack.idp_url + "/authorize?")
