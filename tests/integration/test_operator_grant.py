"""Operator status from PLATFORM_OPERATOR_EMAILS needs a verified email from the platform's own
database connection: nobody becomes an operator by claiming an operator's address."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

import pytest

from tests.support.stack import Browser, Stack

pytestmark = pytest.mark.stack(
    platform_operator_emails="olivia@ops.example,root@ops.example,alice@acme.example"
)


def sign_up(browser: Browser, email: str) -> None:
    chooser = browser.follow(browser.start_login(email))
    link = re.search(r'href="(/u/login/Username-Password-Authentication[^"]*)"', chooser.text)
    assert link, chooser.text
    password_page = browser.follow(
        browser.client.get(urljoin(str(chooser.url), html.unescape(link[1])))
    )
    signup_link = re.search(r'href="(/u/signup[^"]*)"', password_page.text)
    assert signup_link
    signup = browser.follow(
        browser.client.get(urljoin(str(password_page.url), html.unescape(signup_link[1])))
    )
    landed = browser.follow(
        browser.submit(
            signup, {"name": "Mallory", "email": email, "password": "mallory-password-1"}
        )
    )
    assert landed.status_code in (200, 403), landed.text


def test_unverified_sign_up_with_an_operator_email_is_not_an_operator(stack: Stack) -> None:
    browser = stack.browser()
    sign_up(browser, "root@ops.example")
    assert browser.get("/admin/").status_code == 404


def test_enterprise_idp_cannot_assert_an_operator_email(stack: Stack) -> None:
    browser = stack.browser()
    browser.login("alice@acme.example")  # listed, verified, but from Acme's own SAML IdP
    assert browser.get("/admin/").status_code == 404


def test_the_configured_operator_is_one(stack: Stack) -> None:
    browser = stack.browser()
    browser.login("olivia@ops.example")
    assert browser.get("/admin/").status_code == 200
