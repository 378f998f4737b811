"""Organization-aware login over real HTTP: the app and the dev IdP as real servers."""

from __future__ import annotations

from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.actions import AuditAction
from saas.db.models import AuditEvent, Membership, Organization, RemovedMember, User
from saas.demo.data import DEMO_PASSWORD
from tests.support.stack import Stack, chooser_link, in_acme
from tests.support.tokens import access_token_for

ACME = "org_AcmeDemo00000001"


def authorize_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_alice_is_routed_to_acme_saml_and_lands_on_acme(stack: Stack) -> None:
    browser = stack.browser()
    redirect = browser.start_login("Alice@ACME.example")
    params = authorize_params(redirect)
    assert redirect.headers["location"].startswith(stack.idp_url + "/authorize?")
    assert params["organization"] == "org_AcmeDemo00000001"
    assert params["connection"] == "acme-saml"
    assert params["login_hint"] == "Alice@ACME.example"
    assert params["code_challenge_method"] == "S256"
    assert params["redirect_uri"] == stack.settings.callback_url
    page = browser.sign_in_at_idp(redirect, "alice@acme.example")
    assert page.status_code == 200, page.text
    assert str(page.url) == stack.app_url + "/o/acme/"
    assert "Acme Corp" in page.text
    assert "owner" in page.text


def test_gina_signs_in_through_globex_oidc(stack: Stack) -> None:
    page = stack.browser().login("gina@globex.example")
    assert str(page.url) == stack.app_url + "/o/globex/"
    assert "Globex Corporation" in page.text


def test_unknown_domain_gets_the_same_shape_of_answer(stack: Stack) -> None:
    known = authorize_params(stack.browser().start_login("alice@acme.example"))
    unknown = authorize_params(stack.browser().start_login("nobody@unknown.example"))
    assert "organization" not in unknown
    assert "connection" not in unknown
    assert unknown["login_hint"] == "nobody@unknown.example"
    assert set(known) - set(unknown) == {"organization", "connection"}


def test_malformed_email_is_refused_inline(stack: Stack) -> None:
    browser = stack.browser()
    page = browser.get("/login")
    response = browser.submit(page, {"email": "not an email"})
    assert response.status_code == 422
    assert "Enter a valid email address" in response.text


def test_olivia_picks_an_organization_and_switches(stack: Stack) -> None:
    browser = stack.browser()
    chooser = browser.login("olivia@ops.example")
    assert str(chooser.url) == stack.app_url + "/select-organization"
    assert "Initech" in chooser.text
    assert "Globex Corporation" in chooser.text
    initech = browser.follow(browser.get("/o/initech/login?silent=true"))
    assert str(initech.url) == stack.app_url + "/o/initech/"
    assert 'data-testid="org-switcher"' in initech.text
    # Switching is a new (silent) authorization with the other organization.
    switch = browser.get("/o/globex/login?silent=true")
    assert authorize_params(switch)["prompt"] == "none"
    globex = browser.follow(switch)
    assert str(globex.url) == stack.app_url + "/o/globex/"
    assert "viewer" in globex.text


def test_a_tenant_page_of_another_active_org_requires_a_new_authorization(stack: Stack) -> None:
    browser = stack.browser()
    browser.login("olivia@ops.example")
    browser.follow(browser.get("/o/initech/login?silent=true"))
    response = browser.get("/o/globex/")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/o/globex/login?next=")


def test_non_member_gets_404_for_another_tenant(stack: Stack) -> None:
    browser = stack.browser()
    browser.login("gina@globex.example")
    assert browser.get("/o/acme/").status_code == 404
    assert browser.get("/o/does-not-exist/").status_code == 404


def test_anonymous_tenant_page_redirects_to_login(stack: Stack) -> None:
    response = stack.browser().get("/o/acme/")
    assert response.status_code == 303
    assert response.headers["location"] == "/o/acme/login?next=%2Fo%2Facme"


def test_session_id_rotates_at_login(stack: Stack) -> None:
    browser = stack.browser()
    redirect = browser.start_login("alice@acme.example")
    before = browser.client.cookies.get("saas_session")
    assert before
    browser.sign_in_at_idp(redirect, "alice@acme.example")
    after = browser.client.cookies.get("saas_session")
    assert after
    assert after != before


def test_next_is_honoured_only_when_relative(stack: Stack) -> None:
    browser = stack.browser()
    page = browser.sign_in_at_idp(
        browser.start_login("alice@acme.example", next_url="//evil.example/x"),
        "alice@acme.example",
    )
    assert str(page.url) == stack.app_url + "/o/acme/"


def test_logout_ends_both_sessions(stack: Stack) -> None:
    browser = stack.browser()
    page = browser.login("alice@acme.example")
    assert page.status_code == 200
    logout = browser.submit(
        browser.get("/o/acme/"), {}
    )  # the only form on the page is the sign-out form
    assert logout.status_code == 303
    # The dev IdP publishes an end_session_endpoint, as Auth0 does: RP-Initiated Logout.
    assert logout.headers["location"].startswith(stack.idp_url + "/oidc/logout?")
    landing = browser.follow(logout)
    assert str(landing.url) == stack.app_url + "/logged-out"
    assert browser.get("/o/acme/").status_code == 303
    # The IdP session is gone too: a silent authorization now needs a login.
    silent = browser.follow(browser.get("/o/acme/login?silent=true"))
    assert "/u/login" in str(silent.url) or "Sign in" in silent.text


def test_logout_without_csrf_token_is_refused(stack: Stack) -> None:
    browser = stack.browser()
    browser.login("alice@acme.example")
    response = browser.client.post(stack.app_url + "/logout")
    assert response.status_code == 403
    assert browser.get("/o/acme/").status_code == 200


def test_a_silent_answer_for_another_person_never_replaces_who_is_signed_in(stack: Stack) -> None:
    """The IdP's session in this browser changed hands (another person signed in there, as an
    admin's SSO test sign-in does): a silent organization switch must not sign the browser in
    as that person. It asks for an interactive, fresh sign-in instead (`prompt=login`)."""
    browser = stack.browser()
    browser.login("olivia@ops.example")
    browser.follow(browser.get("/o/initech/login?silent=true"))
    other = stack.browser()
    other.login("gina@globex.example")
    idp_session = other.client.cookies.get("devidp_session")
    assert idp_session
    browser.client.cookies.set("devidp_session", idp_session)
    switch = browser.get("/o/globex/login?silent=true")
    assert authorize_params(switch)["prompt"] == "none"
    # The IdP answers silently, for gina, to the app's callback.
    answered = browser.client.get(switch.headers["location"])
    assert answered.status_code in (302, 303), answered.text[:300]
    assert "code=" in answered.headers["location"]
    callback = browser.client.get(answered.headers["location"])
    assert callback.status_code == 303
    assert authorize_params(callback)["prompt"] == "login"
    # Still Olivia here: her session is unchanged and Globex was not entered as gina.
    still = browser.get("/o/initech/")
    assert still.status_code == 200
    assert "olivia@ops.example" in still.text
    assert browser.get("/o/globex/").status_code == 303


# ---- a removal sticks (Acme provisions just in time from acme.example) ---------------------

REMOVED = "You were removed from Acme Corp; ask an admin to invite you again."


def _bob_removed_by_alice_over_the_api(stack: Stack) -> None:
    """The API's removal: it records the removal as the dashboard's does (one service)."""
    owner = stack.browser()
    owner.login("alice@acme.example")
    token = access_token_for(owner, ACME)
    members_url = stack.app_url + "/api/v1/orgs/acme/members"
    auth = {"authorization": f"Bearer {token}"}
    members = httpx.get(members_url, headers=auth, timeout=10).json()["items"]
    bob = next(m for m in members if m["email"] == "bob@acme.example")
    removed = httpx.delete(f"{members_url}/{bob['id']}", headers=auth, timeout=10)
    assert removed.status_code == 204, removed.text


def _bob_state(stack: Stack) -> tuple[bool, int, int]:
    """Whether Bob is an Acme member, his removal records, and his sign-in audit entries."""

    async def read(session: AsyncSession, org: Organization) -> tuple[bool, int, int]:
        bob = await session.scalar(select(User).where(User.email == "bob@acme.example"))
        assert bob is not None
        member = await session.scalar(
            select(Membership.id).where(
                Membership.organization_id == org.id, Membership.user_id == bob.id
            )
        )
        removed = await session.scalar(
            select(func.count()).where(
                RemovedMember.organization_id == org.id, RemovedMember.user_id == bob.id
            )
        )
        logins = await session.scalar(
            select(func.count()).where(
                AuditEvent.action == AuditAction.AUTH_LOGIN.value,
                AuditEvent.target_id == str(bob.id),
            )
        )
        return member is not None, int(removed or 0), int(logins or 0)

    return in_acme(stack.settings, read)


def test_a_removed_person_is_refused_not_provisioned_again(stack: Stack) -> None:
    _bob_removed_by_alice_over_the_api(stack)
    assert _bob_state(stack)[:2] == (False, 1)
    logins_before = _bob_state(stack)[2]

    browser = stack.browser()
    refused = browser.login("bob@acme.example")
    assert refused.status_code == 403
    assert "/callback" in str(refused.url)
    assert REMOVED in refused.text
    assert "Acme Corp" in refused.text
    # Nothing written: no membership, no sign-in recorded, nobody signed in here.
    assert _bob_state(stack) == (False, 1, logins_before)
    assert browser.get("/account/sessions").status_code == 303


def test_the_removed_refusal_is_a_problem_for_a_json_client(stack: Stack) -> None:
    _bob_removed_by_alice_over_the_api(stack)
    browser = stack.browser()
    at_idp = browser.start_login("bob@acme.example")
    page = browser.follow(at_idp)
    if link := chooser_link(page.text):
        page = browser.follow(browser.client.get(urljoin(str(page.url), link)))
    back = browser.submit(page, {"email": "bob@acme.example", "password": DEMO_PASSWORD})
    # The IdP sends the browser to the callback; ask for it as a JSON client would.
    callback = back
    while callback.status_code in (302, 303) and "/callback" not in callback.headers["location"]:
        callback = browser.client.get(urljoin(str(callback.url), callback.headers["location"]))
    answer = browser.client.get(
        urljoin(str(callback.url), callback.headers["location"]),
        headers={"accept": "application/json"},
    )
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["reason"] == "removed_from_organization"
    assert body["detail"] == REMOVED
    assert _bob_state(stack)[:2] == (False, 1)
