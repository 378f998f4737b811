"""Drive the dev IdP's sign-in pages over HTTP like a browser would."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx

from saas.demo.data import DEMO_PASSWORD

_INPUT = re.compile(r'<input[^>]*name="(?P<name>[^"]+)"[^>]*value="(?P<value>[^"]*)"', re.S)
_FORM = re.compile(r'<form[^>]*action="(?P<action>[^"]+)"', re.S)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def hidden_fields(page: str) -> dict[str, str]:
    return {
        m["name"]: html.unescape(m["value"])
        for m in _INPUT.finditer(page)
        if m["name"] in ("_csrf_token", "state")
    }


def follow_to_page(browser: httpx.Client, url: str) -> httpx.Response:
    """Follow redirects that stay on the IdP; stop at a page or a redirect that leaves it."""
    response = browser.get(url)
    while response.status_code in (302, 303, 307):
        location = response.headers["location"]
        if location.startswith("http") and not location.startswith(str(browser.base_url)):
            return response
        response = browser.get(location)
    return response


def submit_form(
    browser: httpx.Client, page: httpx.Response, fields: dict[str, str]
) -> httpx.Response:
    action = html.unescape(_FORM.search(page.text)["action"])  # type: ignore[index]
    return browser.post(action, data={**hidden_fields(page.text), **fields})


def sign_in(
    browser: httpx.Client,
    authorize_url: str,
    email: str,
    password: str = DEMO_PASSWORD,
    connection: str | None = None,
) -> httpx.Response:
    """Start at /authorize and sign in; returns the response that leaves the IdP (or a page)."""
    page = follow_to_page(browser, authorize_url)
    if page.status_code != 200:
        return page
    if "Choose how you sign in" in page.text:
        assert connection is not None, "the chooser needs a connection"
        link = re.search(rf'href="(/u/login/{re.escape(connection)}\?state=[^"]+)"', page.text)
        assert link, page.text
        page = follow_to_page(browser, html.unescape(link[1]))
    response = submit_form(browser, page, {"email": email, "password": password})
    while response.status_code in (302, 303) and response.headers["location"].startswith("/"):
        response = browser.get(response.headers["location"])
    return response


def query_of(response: httpx.Response) -> dict[str, str]:
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
