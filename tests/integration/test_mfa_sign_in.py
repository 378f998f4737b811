"""Require MFA end to end over HTTP, app and dev IdP: the owner turns it on, the next sign-in
to the organization enrolls a TOTP authenticator (QR code and key) and confirms a code; later
sign-ins are challenged; a wrong code, a reused code and too many tries are refused; a
session opened without MFA is stepped up; the ID token carries Auth0's `amr: ["mfa"]`."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from urllib.parse import urljoin

import httpx
import jwt
import pyotp
from litestar.stores.file import FileStore
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from saas.db.models import Organization
from saas.demo.data import DEMO_PASSWORD
from saas.login.mfa import MFA_POLICY
from tests.support.stack import Browser, Stack, form_fields, in_acme

_SECRET = re.compile(r'data-testid="totp-secret">([A-Z2-7]+)<')
_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


def require_mfa(stack: Stack, required: bool = True) -> None:
    async def write(session: AsyncSession, org: Organization) -> None:
        await session.execute(
            update(Organization).where(Organization.id == org.id).values(require_mfa=required)
        )

    in_acme(stack.settings, write)


def to_mfa_page(browser: Browser, email: str) -> httpx.Response:
    """Sign in up to the dev IdP's second step; returns its page."""
    page = browser.sign_in_at_idp(browser.start_login(email), email, DEMO_PASSWORD)
    assert page.status_code == 200, page.text
    assert "/u/mfa" in str(page.url), page.url
    return page


def submit_code(browser: Browser, page: httpx.Response, code: str) -> httpx.Response:
    action = _FORM_ACTION.search(page.text)
    assert action
    url = urljoin(str(page.url), html.unescape(action[1]))
    return browser.client.post(url, data={**form_fields(page.text), "code": code})


def next_code(secret: str, used: set[str]) -> str:
    """A code the IdP has not accepted yet: now's, else the next step's (within drift)."""
    totp = pyotp.TOTP(secret)
    for offset in (0, 30):
        code = totp.at(time.time() + offset)
        if code not in used:
            used.add(code)
            return code
    raise AssertionError("no fresh code")


def test_enrollment_then_challenge_then_in(stack: Stack) -> None:
    require_mfa(stack)
    browser = stack.browser()
    page = to_mfa_page(browser, "alice@acme.example")
    assert "Secure your account" in page.text
    assert "<svg" in page.text  # the QR code
    found = _SECRET.search(page.text)
    assert found
    secret = found[1]
    used: set[str] = set()

    wrong = submit_code(browser, page, "000000" if pyotp.TOTP(secret).now() != "000000" else "1")
    assert wrong.status_code == 400
    assert "That code is not right" in wrong.text
    assert _SECRET.search(wrong.text)[1] == secret  # type: ignore[index]  # same key on retry

    landed = browser.follow(submit_code(browser, wrong, next_code(secret, used)))
    assert landed.status_code == 200, landed.text
    assert str(landed.url).startswith(stack.app_url + "/o/acme")
    # The ID token the app received said MFA, as Auth0 says it.
    assert browser.get("/o/acme/settings/security").status_code == 200

    # Signed out and back: a challenge now, no second enrollment.
    csrf = re.search(r'name="_csrf_token" value="([^"]+)"', browser.get("/o/acme/").text)
    assert csrf
    browser.follow(browser.client.post(stack.app_url + "/logout", data={"_csrf_token": csrf[1]}))
    again = to_mfa_page(browser, "alice@acme.example")
    assert "Verify your identity" in again.text
    assert not _SECRET.search(again.text)
    landed = browser.follow(submit_code(browser, again, next_code(secret, used)))
    assert landed.status_code == 200
    assert str(landed.url).startswith(stack.app_url + "/o/acme")


def test_a_used_code_is_refused_and_five_wrong_codes_end_the_sign_in(stack: Stack) -> None:
    require_mfa(stack)
    browser = stack.browser()
    page = to_mfa_page(browser, "bob@acme.example")
    found = _SECRET.search(page.text)
    assert found
    secret = found[1]
    code = pyotp.TOTP(secret).now()
    assert browser.follow(submit_code(browser, page, code)).status_code == 200

    other = stack.browser()
    challenge = to_mfa_page(other, "bob@acme.example")
    # The same code again: its time step was accepted once already (also when the clock has
    # moved on a step since, the code being one step old).
    replay = submit_code(other, challenge, code)
    assert replay.status_code == 400
    assert "That code is not right" in replay.text
    page = replay
    for _ in range(3):
        page = submit_code(other, page, "12345x")
        assert page.status_code == 400
    # The fifth wrong code: back to the app with access_denied, shown as a clear refusal.
    last = submit_code(other, page, "12345x")
    assert last.status_code in {302, 303}
    refused = other.follow(last)
    assert refused.status_code == 400  # the provider's refusal, on the app's clear page
    assert "does not have access" in refused.text
    assert other.get("/o/acme/").status_code == 303


def test_the_id_token_carries_amr_mfa_and_the_policy_as_acr(stack: Stack) -> None:
    require_mfa(stack)
    browser = stack.browser()
    to_idp = browser.start_login("vera@acme.example")
    assert "acr_values=" in to_idp.headers["location"]
    assert MFA_POLICY.replace(":", "%3A").replace("/", "%2F") in to_idp.headers["location"]
    page = browser.sign_in_at_idp(to_idp, "vera@acme.example")
    found = _SECRET.search(page.text)
    assert found
    callback = submit_code(browser, page, pyotp.TOTP(found[1]).now())
    assert callback.status_code in {302, 303}
    assert callback.headers["location"].startswith(stack.settings.callback_url)
    # Read the session's ID token (kept server-side for the sign-out hint).
    landed = browser.follow(callback)
    assert landed.status_code == 200
    session_id = browser.client.cookies.get("saas_session")
    assert session_id
    raw = asyncio.run(FileStore(stack.settings.state_dir / "stores" / "sessions").get(session_id))
    assert raw is not None
    claims = jwt.decode(json.loads(raw)["id_token"], options={"verify_signature": False})
    assert claims["amr"] == ["mfa"]
    assert claims["acr"] == MFA_POLICY


def test_a_session_without_mfa_is_stepped_up_when_the_owner_turns_it_on(stack: Stack) -> None:
    browser = stack.browser()
    assert browser.login("bob@acme.example").status_code == 200
    assert browser.get("/o/acme/").status_code == 200
    require_mfa(stack)
    step_up = browser.get("/o/acme/")
    assert step_up.status_code == 303
    assert step_up.headers["location"].startswith("/o/acme/login")
    to_idp = browser.get(step_up.headers["location"])
    assert "acr_values=" in to_idp.headers["location"]
    assert "prompt=none" not in to_idp.headers["location"]
    # The IdP's single sign-on session skips the password, never the second factor.
    page = browser.follow(to_idp)
    assert "/u/mfa" in str(page.url), page.url
    found = _SECRET.search(page.text)
    assert found
    landed = browser.follow(submit_code(browser, page, pyotp.TOTP(found[1]).now()))
    assert landed.status_code == 200
    assert browser.get("/o/acme/").status_code == 200


def test_the_silent_switch_into_an_mfa_organization_asks_interactively(stack: Stack) -> None:
    require_mfa(stack)
    browser = stack.browser()
    to_idp = browser.get("/o/acme/login?silent=true")
    assert to_idp.status_code == 303
    assert "prompt=none" not in to_idp.headers["location"]
    assert "acr_values=" in to_idp.headers["location"]
