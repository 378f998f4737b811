"""Relying-party negative tests, modelled on the OpenID Foundation's RP conformance tests.

The app runs for real (uvicorn, seeded database on both backends) against an OpenID Provider
under the test's control (`tests.support.controlled_op`). Every misbehaviour of the OP, and every
tampering with the callback, must end in a clear 4xx refusal with nothing written to the
session's identity or to the database. A positive control proves that the same OP can succeed.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import ssl
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from advanced_alchemy.base import metadata_registry
from litestar import Litestar
from litestar.stores.file import FileStore
from markupsafe import escape
from sqlalchemy import text

from saas.app import create_app
from saas.config import Settings, load_settings
from saas.db.config import create_sqlalchemy_config
from saas.demo.data import PASSWORD_CONNECTION, organization, user
from saas.login import errors
from saas.login.callback import NO_EMAIL, PROVIDER_MESSAGES
from saas.login.jwks import JWKSCache
from saas.login.mfa import MFA_POLICY
from saas.login.provider import OIDCProvider
from saas.login.sessions import SESSION_STORE
from saas.login.tokens import InvalidToken, verify_access_token, verify_id_token
from tests.support.controlled_op import (
    CLIENT_ID,
    CLIENT_SECRET,
    DROP_STATE,
    NEWCOMER_SUB,
    ControlledOP,
    Scenario,
    Signing,
    running_op,
)
from tests.support.servers import Served, serving
from tests.support.stack import (
    Browser,
    Stack,
    app_store_dirs,
    empty_app_stores,
    seed,
    stack_settings,
)

BACKENDS = ("sqlite", "postgresql")  # as tests/conftest.py parametrizes `database_url`
HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
JSON = "application/json"
ACCEPTS = (HTML, JSON)

INITECH = organization("initech")
GLOBEX = organization("globex")
ACME = organization("acme")
# The claim the tenant's post-login Action adds (README, "Auth0 tenant: sign-in and sign-out").
CONNECTION_CLAIM: str = Settings.model_fields["auth0_connection_claim"].default
ACME_SAML = ACME.connection.name if ACME.connection else ""
NO_EMAIL_CLAIMS = frozenset({"email", "email_verified"})
OLIVIA = user("olivia@ops.example")
UNKNOWN_ORG_ID = "org_NotKnownHere0042"
UNKNOWN_DOMAIN_EMAIL = "nia@unknown-domain.example"
# An IdP's error description can name internal ids: it goes to the log, never onto the page.
OP_DESCRIPTION = "user auth0|65f0 is blocked in org_InitechDemo00003 (rule r-17)"
# What a refusal must leave untouched (the session store is checked separately).
IDENTITY_TABLES = (
    "users",
    "memberships",
    "organizations",
    "organization_domains",
    "enterprise_connections",
    "invitations",
    "audit_events",
    "outbox_jobs",
)


# ---- the OP, the app, the database ---------------------------------------------------------
#
# One OP for the module. One seeded database per backend for the module, and one app on it for
# the refusal matrix: sharing is safe because every refusal test compares a full-row snapshot
# of the identity tables before and after (a refusal that wrote anything fails right there).
# Tests that need a fresh app (an empty JWKS cache, no sessions) or that sign in get the same
# app restarted (`RP.restart`), on the same database.


@pytest.fixture(scope="module")
def op() -> Iterator[ControlledOP]:
    with running_op(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_op(request: pytest.FixtureRequest) -> Iterator[None]:
    """A well-behaved OP with no history at the start of every test."""
    if "op" not in request.fixturenames:
        yield
        return
    op: ControlledOP = request.getfixturevalue("op")
    op.reset()
    yield
    op.reset()


async def _truncate(url: str) -> None:
    engine = create_sqlalchemy_config(load_settings(database_url=url)).get_engine()
    tables = ", ".join(f'"{t.name}"' for t in metadata_registry.get(None).sorted_tables)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def seeded_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The demo data on each backend, once for the module (as `database_url` does per test)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("migrated_sqlite_template")
        target = tmp_path_factory.mktemp("rp-negative") / "app.db"
        shutil.copyfile(template, target)
        url = f"sqlite+aiosqlite:///{target}"
    else:
        url = request.getfixturevalue("migrated_postgres")
    asyncio.run(seed(load_settings(database_url=url)))
    yield url
    if request.param == "postgresql":
        asyncio.run(_truncate(url))


class Database:
    """Direct reads and writes, outside the app, for before/after comparisons."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _run(self, statements: list[tuple[str, dict[str, Any]]]) -> list[list[tuple[Any, ...]]]:
        async def run() -> list[list[tuple[Any, ...]]]:
            engine = create_sqlalchemy_config(self.settings).get_engine()
            try:
                async with engine.begin() as connection:
                    results = []
                    for sql, params in statements:
                        result = await connection.execute(text(sql), params)
                        results.append(
                            [tuple(row) for row in result.fetchall()] if result.returns_rows else []
                        )
                    return results
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def snapshot(self) -> dict[str, list[str]]:
        """Every row of the identity tables, so any insert, update or delete shows up."""
        results = self._run([(f"SELECT * FROM {table}", {}) for table in IDENTITY_TABLES])  # noqa: S608
        return {
            table: sorted(repr(row) for row in rows)
            for table, rows in zip(IDENTITY_TABLES, results, strict=True)
        }

    def scalar(self, sql: str, **params: Any) -> Any:
        return self._run([(sql, params)])[0][0][0]

    def count_users(self, sub: str) -> int:
        return int(self.scalar("SELECT count(*) FROM users WHERE sub = :sub", sub=sub))

    def count_logins(self) -> int:
        return int(self.scalar("SELECT count(*) FROM audit_events WHERE action = 'auth.login'"))

    def set_require_mfa(self, slug: str, required: bool) -> None:
        sql = "UPDATE organizations SET require_mfa = :required WHERE slug = :slug"
        self._run([(sql, {"required": required, "slug": slug})])

    def set_status(self, slug: str, status: str) -> None:
        # Raw SQL on purpose: no `updated_at` bump, so a restored row equals its snapshot.
        sql = "UPDATE organizations SET status = :status WHERE slug = :slug"
        self._run([(sql, {"status": status, "slug": slug})])


# Creating an httpx client loads the CA bundle (~0.1 s); everything here is http on loopback.
_TLS = ssl.create_default_context()


class LoopbackBrowser(Browser):
    """`Browser`, with a client that shares one TLS context instead of building its own."""

    def __init__(self, stack: Stack) -> None:  # not calling super(): it would build a client
        self.stack = stack
        self.client = httpx.Client(follow_redirects=False, timeout=15, verify=_TLS)
        self.history: list[httpx.Response] = []


@dataclass
class RP:
    """The relying party under test: the real app on a real socket, configured for the OP."""

    settings: Settings
    op: ControlledOP
    db: Database
    app: Litestar
    served: Served
    store_dirs: dict[str, bool]

    @property
    def url(self) -> str:
        return self.served.url

    def restart(self) -> None:
        """The app as if just started: no sessions, no sign-in counts, neither the OP's
        discovery document nor its keys cached. Cheaper than a new app per test."""
        self.served.call(self._restart())

    async def _restart(self) -> None:
        # On the app's loop, between its requests, as everything else the app does.
        provider: OIDCProvider = self.app.state["provider"]
        provider.forget()
        await empty_app_stores(self.app, self.store_dirs)

    def browser(self) -> Browser:
        stack = Stack(settings=self.settings, app_url=self.url, idp_url=self.op.base_url)
        return LoopbackBrowser(stack)

    def session(self, browser: Browser) -> dict[str, Any] | None:
        """The server-side session data behind the browser's cookie, if there is any."""
        session_id = browser.client.cookies.get("saas_session")
        if not session_id:
            return None
        raw = self.served.call(self.app.stores.get(SESSION_STORE).get(session_id))
        return None if raw is None else dict(json.loads(raw))


@contextmanager
def running_rp(op: ControlledOP, database_url: str, state_dir: Path) -> Iterator[RP]:
    settings = stack_settings(
        database_url,
        state_dir,
        auth0_domain=op.base_url,  # http is allowed on loopback
        auth0_client_id=CLIENT_ID,
        auth0_client_secret=CLIENT_SECRET,
        state_dir=state_dir,
        login_rate_limit_per_minute=10_000,
        # The outbox would call the Management API at the OP and update its rows meanwhile.
        outbox_worker_enabled=False,
    )
    assert settings.auth0_issuer == op.issuer
    op.register_redirect_uri(settings.callback_url)
    port = int(settings.app_base_url.rsplit(":", 1)[1])
    app = create_app(settings)
    with serving(app, port=port) as served:
        yield RP(
            settings=settings,
            op=op,
            db=Database(settings),
            app=app,
            served=served,
            store_dirs=app_store_dirs(app),
        )


@pytest.fixture(scope="module")
def shared_rp(
    op: ControlledOP, seeded_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RP]:
    with running_rp(op, seeded_database_url, tmp_path_factory.mktemp("rp-state")) as running:
        yield running


@pytest.fixture
def rp(shared_rp: RP) -> RP:
    """The module's app as if just started: empty JWKS cache, empty session store."""
    shared_rp.restart()
    return shared_rp


# ---- one login attempt, hop by hop ----------------------------------------------------------


@dataclass
class Attempt:
    callback_url: str
    response: httpx.Response


def attempt(
    rp: RP,
    browser: Browser,
    *,
    start: Literal["organization", "email"] = "organization",
    email: str = UNKNOWN_DOMAIN_EMAIL,
    accept: str = HTML,
    before_callback: Callable[[], None] | None = None,
) -> Attempt:
    """App -> OP /authorize -> back to the app's /callback; returns the app's answer there."""
    if start == "organization":
        to_op = browser.get(f"/o/{INITECH.slug}/login")
    else:
        to_op = browser.start_login(email)
    assert to_op.status_code == 303, to_op.text
    assert to_op.headers["location"].startswith(rp.op.base_url + "/authorize?")
    back = browser.client.get(to_op.headers["location"])
    assert back.status_code == 302, back.text
    callback_url = back.headers["location"]
    assert callback_url.startswith(rp.settings.callback_url + "?")
    if before_callback is not None:
        before_callback()
    response = browser.client.get(callback_url, headers={"accept": accept})
    return Attempt(callback_url=callback_url, response=response)


def assert_refused(
    response: httpx.Response,
    refusal: type[errors.LoginRefused],
    *,
    accept: str,
    detail: str | None = None,
) -> None:
    detail = detail or refusal.message
    assert response.status_code == refusal.status_code, response.text
    assert 400 <= response.status_code < 500
    if accept == JSON:
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["reason"] == refusal.reason, problem
        assert problem["status"] == refusal.status_code
        assert problem["title"] == refusal.title
        assert problem["detail"] == detail
    else:
        assert response.headers["content-type"].startswith("text/html")
        assert f"<h1>{escape(refusal.title)}</h1>" in response.text, response.text
        assert str(escape(detail)) in response.text, response.text


def assert_signed_out(rp: RP, browser: Browser) -> None:
    # The stored session first: a page request may itself drop a session it cannot use.
    session = rp.session(browser)
    assert session is None or "user_id" not in session, session
    tenant_page = browser.get(f"/o/{INITECH.slug}/")
    assert tenant_page.status_code == 303, tenant_page.text
    assert tenant_page.headers["location"].startswith(f"/o/{INITECH.slug}/login")


def sign_in_olivia(rp: RP) -> Attempt:
    """A correct login for a real member: the OP can succeed."""
    rp.op.use(sub=OLIVIA.sub, email=OLIVIA.email, name=OLIVIA.name)
    browser = rp.browser()
    done = attempt(rp, browser)
    assert done.response.status_code == 303, done.response.text
    assert done.response.headers["location"] == f"/o/{INITECH.slug}/"
    page = browser.get(done.response.headers["location"])
    assert page.status_code == 200, page.text
    assert INITECH.display_name in page.text
    rp.op.use()
    return done


# ---- the cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    scenario: Callable[[ControlledOP], Scenario]
    refusal: type[errors.LoginRefused]
    detail: str | None = None
    start: Literal["organization", "email"] = "organization"
    email: str = UNKNOWN_DOMAIN_EMAIL
    suspend_before_callback: bool = False
    # Initech requires multi-factor authentication for this case (its security policy).
    require_mfa: bool = False
    # For token cases: what verify_id_token must name as the reason (checked in-process).
    token_reason: str | None = None
    # Text that must not appear in the answer.
    not_shown: str | None = None
    marks: tuple[Any, ...] = field(default=())

    def param(self) -> Any:
        return pytest.param(self, id=self.id, marks=self.marks)


def _s(**changes: Any) -> Callable[[ControlledOP], Scenario]:
    return lambda _op: Scenario(**changes)


TOKEN = errors.TokenRejected
CASES: tuple[Case, ...] = (
    # Signatures and algorithms.
    Case("bad-signature-tampered-payload", _s(signing=Signing.TAMPERED), TOKEN,
         token_reason="InvalidSignatureError"),
    Case("bad-signature-other-key-under-published-kid",
         _s(signing=Signing.FOREIGN_KEY_PUBLISHED_KID), TOKEN,
         token_reason="InvalidSignatureError"),
    Case("alg-none", _s(signing=Signing.NONE), TOKEN,
         token_reason="algorithm 'none' is not allowed"),
    Case("hs256-keyed-with-the-rsa-public-key", _s(signing=Signing.HS256_PUBLIC_KEY), TOKEN,
         token_reason="algorithm 'HS256' is not allowed"),
    Case("key-not-in-the-jwks", _s(signing=Signing.UNPUBLISHED_KEY), TOKEN,
         token_reason="unknown signing key"),
    Case("no-kid", _s(omit_kid=True), TOKEN, token_reason="token has no key id"),
    # Issuer and audience.
    Case("issuer-without-trailing-slash", lambda op: Scenario(claims={"iss": op.base_url}),
         TOKEN, token_reason="InvalidIssuerError"),
    Case("issuer-of-another-tenant", _s(claims={"iss": "https://evil.example/"}), TOKEN,
         token_reason="InvalidIssuerError"),
    Case("wrong-audience", _s(claims={"aud": "someone-else"}), TOKEN,
         token_reason="InvalidAudienceError"),
    Case("several-audiences-without-azp",
         lambda op: Scenario(claims={"aud": [op.client_id, "someone-else"]}), TOKEN,
         token_reason="must name us as azp"),
    # Required claims and times.
    Case("missing-sub", _s(drop=frozenset({"sub"})), TOKEN,
         token_reason="MissingRequiredClaimError"),
    Case("empty-sub", _s(sub=""), TOKEN, token_reason="token has no subject"),
    Case("missing-iat", _s(drop=frozenset({"iat"})), TOKEN,
         token_reason="MissingRequiredClaimError"),
    Case("future-iat", _s(iat_offset=3600, exp_offset=7200), TOKEN,
         token_reason="ImmatureSignatureError"),
    Case("missing-exp", _s(drop=frozenset({"exp"})), TOKEN,
         token_reason="MissingRequiredClaimError"),
    Case("expired", _s(iat_offset=-7200, exp_offset=-3600), TOKEN,
         token_reason="ExpiredSignatureError"),
    Case("exp-as-a-numeric-string", _s(as_strings=frozenset({"exp"})), TOKEN,
         token_reason="claim 'exp' is not a NumericDate"),
    Case("iat-as-a-numeric-string", _s(as_strings=frozenset({"iat"})), TOKEN,
         token_reason="claim 'iat' is not a NumericDate"),
    Case("auth-time-as-a-numeric-string", _s(as_strings=frozenset({"auth_time"})), TOKEN,
         token_reason="claim 'auth_time' is not a NumericDate"),
    Case("nbf-as-a-boolean", _s(claims={"nbf": True}), TOKEN,
         token_reason="claim 'nbf' is not a NumericDate"),
    Case("issued-too-long-ago-but-unexpired", _s(iat_offset=-3600, exp_offset=3600), TOKEN,
         token_reason="issued more than 300 s ago"),
    # Nonce.
    Case("nonce-mismatch", _s(claims={"nonce": "not-the-nonce-we-sent"}), TOKEN,
         token_reason="nonce mismatch"),
    Case("nonce-missing", _s(drop=frozenset({"nonce"})), TOKEN, token_reason="nonce mismatch"),
    Case("no-id-token", _s(omit_id_token=True), TOKEN,
         detail="The identity provider sent no ID token."),
    # State.
    Case("state-missing", _s(state_override=DROP_STATE), errors.StateMismatch),
    Case("state-altered", _s(state_override="x" * 43), errors.StateMismatch),
    # The OP says no.
    Case("access-denied", _s(authorize_error=("access_denied", OP_DESCRIPTION)),
         errors.ProviderError, detail=PROVIDER_MESSAGES["access_denied"],
         not_shown=OP_DESCRIPTION),
    # Organizations.
    Case("org-id-missing", _s(drop=frozenset({"org_id"})), errors.OrganizationMismatch),
    Case("org-id-of-another-known-org", _s(claims={"org_id": GLOBEX.auth0_id}),
         errors.OrganizationMismatch),
    Case("org-id-unknown-for-an-organization-login", _s(claims={"org_id": UNKNOWN_ORG_ID}),
         errors.OrganizationMismatch),
    Case("org-id-unknown", _s(claims={"org_id": UNKNOWN_ORG_ID}), errors.UnknownOrganization,
         start="email"),
    Case("organization-suspended", _s(), errors.OrganizationSuspended,
         suspend_before_callback=True),
    # Verified tokens that still must not get in: the user row written on the way is rolled back.
    Case("not-a-member", _s(), errors.NotAMember),
    Case("sso-required", _s(sub="auth0|rp-negative-mallory", email="mallory@acme.example"),
         errors.SsoRequired, start="email", email="mallory@acme.example"),
    # Require-SSO decides by the connection claim, never by the shape of the user id: a
    # database user id can read like anything after `auth0|` (custom databases, imports).
    Case("sso-required-user-id-shaped-like-the-connection",
         _s(sub=f"auth0|{ACME_SAML}|mallory", email="mallory@acme.example"),
         errors.SsoRequired, start="email", email="mallory@acme.example"),
    Case("sso-required-claim-names-another-connection",
         _s(sub=f"samlp|{ACME_SAML}|mallory@acme.example", email="mallory@acme.example",
            claims={CONNECTION_CLAIM: PASSWORD_CONNECTION}),
         errors.SsoRequired, start="email", email="mallory@acme.example"),
    Case("sso-required-claim-not-a-string",
         _s(sub="waad|rp-negative-mallory", email="mallory@acme.example",
            claims={CONNECTION_CLAIM: [ACME_SAML]}),
         errors.SsoRequired, start="email", email="mallory@acme.example"),
    # The email from /userinfo (OpenID Connect Core 1.0 §5.3.2): only for the same `sub`.
    Case("userinfo-of-another-subject", _s(drop=NO_EMAIL_CLAIMS,
                                          userinfo_claims={"sub": "auth0|somebody-else"}),
         TOKEN),
    Case("userinfo-without-a-subject", _s(drop=NO_EMAIL_CLAIMS, userinfo_drop=frozenset({"sub"})),
         TOKEN),
    Case("userinfo-without-an-email", _s(drop=NO_EMAIL_CLAIMS,
                                        userinfo_drop=frozenset({"email"})),
         TOKEN, detail=NO_EMAIL),
    Case("userinfo-failing", _s(drop=NO_EMAIL_CLAIMS, userinfo_status=500), TOKEN,
         detail=NO_EMAIL),
    # The email and whether it is verified come from one answer: the ID token says verified,
    # /userinfo (which has the email) says not, and just-in-time membership needs verified.
    Case("userinfo-email-not-verified",
         _s(sub="waad|rp-negative-uma", email="uma@acme.example", drop=frozenset({"email"}),
            claims={CONNECTION_CLAIM: ACME_SAML}, userinfo_claims={"email_verified": False}),
         errors.EmailNotVerified, start="email", email="uma@acme.example"),
    # Multi-factor authentication, for an organization that requires it: a real member (the
    # same sign-in lands when the organization does not), whose ID token's `amr` must hold
    # "mfa" (saas.login.mfa).
    Case("mfa-required-no-amr", _s(sub=OLIVIA.sub, email=OLIVIA.email, drop=frozenset({"amr"})),
         errors.MfaRequired, require_mfa=True),
    Case("mfa-required-amr-without-mfa",
         _s(sub=OLIVIA.sub, email=OLIVIA.email, claims={"amr": ["pwd", "otp"]}),
         errors.MfaRequired, require_mfa=True),
    Case("mfa-required-amr-a-string-not-a-list",
         _s(sub=OLIVIA.sub, email=OLIVIA.email, claims={"amr": "mfa"}),
         errors.MfaRequired, require_mfa=True),
    Case("mfa-required-amr-case-differs",
         _s(sub=OLIVIA.sub, email=OLIVIA.email, claims={"amr": ["MFA"]}),
         errors.MfaRequired, require_mfa=True),
)  # fmt: skip


@pytest.mark.parametrize("case", [case.param() for case in CASES])
def test_refused_with_a_clear_page_and_nothing_written(shared_rp: RP, case: Case) -> None:
    """Status, title and detail on the HTML page and in the JSON problem (with its `reason`);
    no `user_id` in the session; not one row of the identity tables inserted, updated or
    deleted (so no user and no `auth.login` audit event either)."""
    rp = shared_rp
    scenario = case.scenario(rp.op)
    if scenario.sub == NEWCOMER_SUB:
        # Its own identity per case: one regression cannot leak into the next case.
        scenario = replace(scenario, sub=f"{NEWCOMER_SUB}-{case.id}")
    rp.op.use(scenario)
    if case.require_mfa:
        rp.db.set_require_mfa(INITECH.slug, True)
    try:
        _refused_and_nothing_written(rp, case, scenario)
    finally:
        if case.require_mfa:
            rp.db.set_require_mfa(INITECH.slug, False)


def _refused_and_nothing_written(rp: RP, case: Case, scenario: Scenario) -> None:
    before = rp.db.snapshot()
    if scenario.sub != OLIVIA.sub:
        assert rp.db.count_users(scenario.sub) == 0

    def suspend() -> None:
        rp.db.set_status(INITECH.slug, "suspended")

    for accept in ACCEPTS:
        browser = rp.browser()
        try:
            done = attempt(
                rp,
                browser,
                start=case.start,
                email=case.email,
                accept=accept,
                before_callback=suspend if case.suspend_before_callback else None,
            )
        finally:
            if case.suspend_before_callback:
                rp.db.set_status(INITECH.slug, "active")
        assert_refused(done.response, case.refusal, accept=accept, detail=case.detail)
        if case.not_shown:
            assert case.not_shown not in done.response.text
            assert str(escape(case.not_shown)) not in done.response.text
        assert_signed_out(rp, browser)
        browser.close()
    assert rp.db.snapshot() == before
    if scenario.sub != OLIVIA.sub:
        assert rp.db.count_users(scenario.sub) == 0
    if case.require_mfa:
        # Asked for, as Auth0 documents it.
        assert rp.op.last_authorization.params["acr_values"] == MFA_POLICY


@pytest.mark.parametrize("case", [case.param() for case in CASES if case.token_reason])
def test_token_is_refused_for_the_right_reason(op: ControlledOP, case: Case) -> None:
    """The pages above all say "could not be verified"; this pins down why, for each token."""
    op.reset()
    op.use(case.scenario(op))
    token = op.mint_id_token(nonce="the-nonce", organization=INITECH.auth0_id)

    async def verify() -> None:
        async with httpx.AsyncClient() as http:
            await verify_id_token(
                token,
                JWKSCache(op.jwks_uri, http),
                issuer=op.issuer,
                client_id=op.client_id,
                nonce="the-nonce",
            )

    with pytest.raises(InvalidToken) as refused:
        asyncio.run(verify())
    assert case.token_reason is not None
    assert case.token_reason in str(refused.value)
    op.reset()


# ---- the positive control and the JWKS ------------------------------------------------------


def test_positive_control_a_member_lands_on_the_organization(rp: RP) -> None:
    logins = rp.db.count_logins()
    rp.op.use(sub=OLIVIA.sub, email=OLIVIA.email, name=OLIVIA.name)
    browser = rp.browser()
    done = attempt(rp, browser)
    assert done.response.status_code == 303, done.response.text
    assert done.response.headers["location"] == f"/o/{INITECH.slug}/"
    page = browser.get(f"/o/{INITECH.slug}/")
    assert page.status_code == 200, page.text
    assert INITECH.display_name in page.text
    session = rp.session(browser)
    assert session is not None
    assert session["user_id"]
    assert rp.db.count_logins() == logins + 1
    # What the app asked the OP for, and how it redeemed the code.
    sent = rp.op.last_authorization
    assert sent.organization == INITECH.auth0_id
    assert sent.params["code_challenge_method"] == "S256"
    assert sent.params["redirect_uri"] == rp.settings.callback_url
    assert sent.nonce
    assert sent.state == parse_qs(urlsplit(done.callback_url).query)["state"][0]
    (redeemed,) = rp.op.code_redemptions
    assert redeemed.status_code == 200
    assert redeemed.form["code_verifier"]
    assert rp.op.jwks_fetches == 1
    assert rp.op.userinfo_requests == []  # the ID token had the email: nothing more to ask


def test_unknown_kid_is_refetched_once_then_refused(rp: RP) -> None:
    sign_in_olivia(rp)  # the app now holds the OP's key set
    assert rp.op.jwks_fetches == 1
    before = rp.db.snapshot()
    rp.op.use(kid="kid-that-nobody-published")
    browser = rp.browser()
    done = attempt(rp, browser)
    assert_refused(done.response, errors.TokenRejected, accept=HTML)
    assert rp.op.jwks_fetches == 2  # exactly one refetch for the unknown kid
    assert_signed_out(rp, browser)
    # Another made-up kid right away: refused from the cache, no new fetch (rate limit).
    rp.op.use(signing=Signing.UNPUBLISHED_KEY)
    browser = rp.browser()
    done = attempt(rp, browser, accept=JSON)
    assert_refused(done.response, errors.TokenRejected, accept=JSON)
    assert rp.op.jwks_fetches == 2
    assert_signed_out(rp, browser)
    assert rp.db.snapshot() == before
    assert rp.db.count_users(NEWCOMER_SUB) == 0


def test_rotated_key_is_accepted_after_one_refetch(rp: RP) -> None:
    sign_in_olivia(rp)
    assert rp.op.jwks_fetches == 1
    rp.op.rotate_key()
    sign_in_olivia(rp)
    assert rp.op.jwks_fetches == 2
    sign_in_olivia(rp)  # the new key is cached now
    assert rp.op.jwks_fetches == 2


# ---- replays --------------------------------------------------------------------------------


def test_replayed_callback_is_refused(rp: RP) -> None:
    first = sign_in_olivia(rp)
    before = rp.db.snapshot()
    logins = rp.db.count_logins()
    # A stranger who got hold of the callback URL (code and state).
    replay = rp.browser()
    response = replay.client.get(first.callback_url, headers={"accept": JSON})
    assert_refused(response, errors.StateMismatch, accept=JSON)
    assert_signed_out(rp, replay)
    assert len(rp.op.code_redemptions) == 1  # the app never redeemed the code a second time
    assert rp.db.snapshot() == before
    assert rp.db.count_logins() == logins


def test_replayed_callback_in_the_signed_in_browser_is_refused(rp: RP) -> None:
    rp.op.use(sub=OLIVIA.sub, email=OLIVIA.email, name=OLIVIA.name)
    browser = rp.browser()
    first = attempt(rp, browser)
    assert first.response.status_code == 303
    before = rp.db.snapshot()
    response = browser.client.get(first.callback_url, headers={"accept": HTML})
    assert_refused(response, errors.StateMismatch, accept=HTML)
    assert len(rp.op.code_redemptions) == 1
    assert rp.db.snapshot() == before


def test_code_already_redeemed_at_the_op_is_refused(rp: RP) -> None:
    sign_in_olivia(rp)
    before = rp.db.snapshot()
    rp.op.use(reuse_redeemed_code=True)
    for accept in ACCEPTS:
        browser = rp.browser()
        done = attempt(rp, browser, accept=accept)
        assert_refused(done.response, errors.CodeExchangeFailed, accept=accept)
        assert_signed_out(rp, browser)
    assert [request.error for request in rp.op.code_redemptions[1:]] == ["invalid_grant"] * 2
    assert rp.db.snapshot() == before


def test_access_token_with_a_string_expiry_is_refused(op: ControlledOP) -> None:
    """The API's tokens go through the same NumericDate rule as ID tokens."""
    op.reset()
    op.use(Scenario(claims={"aud": "https://api.example/"}, as_strings=frozenset({"exp"})))
    token = op.mint_id_token(nonce=None)

    async def verify() -> None:
        async with httpx.AsyncClient() as http:
            await verify_access_token(
                token,
                JWKSCache(op.jwks_uri, http),
                issuer=op.issuer,
                audience="https://api.example/",
            )

    with pytest.raises(InvalidToken, match="claim 'exp' is not a NumericDate"):
        asyncio.run(verify())
    op.reset()


# ---- the connection claim, the email from /userinfo, sign-out ------------------------------

_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def test_the_connection_claim_admits_a_two_part_user_id(rp: RP) -> None:
    """A Microsoft Entra ID user id names no connection (`waad|<object id>`): the connection
    claim does, and Acme, which requires SSO, lets the person in (just in time)."""
    sub = "waad|7f3c9e2a-rp-negative-erin"
    rp.op.use(sub=sub, email="erin@acme.example", name="Erin", claims={CONNECTION_CLAIM: ACME_SAML})
    browser = rp.browser()
    done = attempt(rp, browser, start="email", email="erin@acme.example")
    assert done.response.status_code == 303, done.response.text
    assert done.response.headers["location"] == f"/o/{ACME.slug}/"
    assert browser.get(f"/o/{ACME.slug}/").status_code == 200
    assert rp.db.count_users(sub) == 1
    assert rp.op.last_authorization.params["connection"] == ACME_SAML


def test_the_email_comes_from_userinfo_when_the_id_token_has_none(rp: RP) -> None:
    rp.op.use(sub=OLIVIA.sub, email=OLIVIA.email, name=OLIVIA.name, drop=NO_EMAIL_CLAIMS)
    assert "email" not in rp.op.id_token_claims(nonce=None, organization=None)
    browser = rp.browser()
    done = attempt(rp, browser)
    assert done.response.status_code == 303, done.response.text
    assert done.response.headers["location"] == f"/o/{INITECH.slug}/"
    assert browser.get(f"/o/{INITECH.slug}/").status_code == 200
    # Asked once, with the access token of this sign-in.
    assert rp.op.userinfo_requests == rp.op.issued_access_tokens
    assert len(rp.op.userinfo_requests) == 1


def _signed_in_olivia(rp: RP) -> tuple[Browser, str]:
    rp.op.use(sub=OLIVIA.sub, email=OLIVIA.email, name=OLIVIA.name)
    browser = rp.browser()
    assert attempt(rp, browser).response.status_code == 303
    (id_token,) = rp.op.issued_id_tokens
    return browser, id_token


def _sign_out(rp: RP, browser: Browser) -> httpx.Response:
    token = _CSRF.search(browser.get(f"/o/{INITECH.slug}/").text)
    assert token
    return browser.client.post(rp.url + "/logout", data={"_csrf_token": token[1]})


def test_sign_out_sends_the_id_token_hint_to_the_end_session_endpoint(rp: RP) -> None:
    """OpenID Connect RP-Initiated Logout 1.0 at the endpoint discovery names, with the ID
    token of the sign-in as `id_token_hint`: kept in the server-side session, never a cookie."""
    browser, id_token = _signed_in_olivia(rp)
    session = rp.session(browser)
    assert session is not None
    assert session["id_token"] == id_token
    assert all(id_token not in (cookie.value or "") for cookie in browser.client.cookies.jar)
    out = _sign_out(rp, browser)
    assert out.status_code == 303, out.text
    location = httpx.URL(out.headers["location"])
    assert str(location.copy_with(query=None)) == rp.op.base_url + "/oidc/logout"
    assert dict(location.params) == {
        "client_id": CLIENT_ID,
        "post_logout_redirect_uri": rp.url + "/logged-out",
        "id_token_hint": id_token,
    }
    assert rp.session(browser) is None


def test_sign_out_falls_back_to_v2_logout_where_no_end_session_endpoint_is_published(
    rp: RP,
) -> None:
    rp.op.end_session_endpoint = None  # before the app's first discovery
    browser, id_token = _signed_in_olivia(rp)
    out = _sign_out(rp, browser)
    assert out.status_code == 303, out.text
    location = httpx.URL(out.headers["location"])
    assert str(location.copy_with(query=None)) == rp.op.base_url + "/v2/logout"
    assert dict(location.params) == {"client_id": CLIENT_ID, "returnTo": rp.url + "/logged-out"}
    assert id_token not in str(location)


# ---- multi-factor authentication: what gets in ----------------------------------------------

MFA_AMR = {"amr": ["pwd", "otp", "mfa"]}  # as Auth0 sends it after a one-time-password challenge


@contextmanager
def initech_requires_mfa(rp: RP) -> Iterator[None]:
    rp.db.set_require_mfa(INITECH.slug, True)
    try:
        yield
    finally:
        rp.db.set_require_mfa(INITECH.slug, False)


def rewrite_session(rp: RP, browser: Browser, **changes: Any) -> None:
    session_id = browser.client.cookies.get("saas_session")
    assert session_id
    store = FileStore(rp.settings.state_dir / "stores" / "sessions")
    data = rp.session(browser)
    assert data is not None
    data.update(changes)
    asyncio.run(store.set(session_id, json.dumps(data).encode(), expires_in=600))


def test_mfa_sign_in_lands_and_the_session_remembers_for_which_organization(rp: RP) -> None:
    with initech_requires_mfa(rp):
        rp.op.use(sub=OLIVIA.sub, email=OLIVIA.email, name=OLIVIA.name, claims=MFA_AMR)
        browser = rp.browser()
        done = attempt(rp, browser)
        assert done.response.status_code == 303, done.response.text
        assert rp.op.last_authorization.params["acr_values"] == MFA_POLICY
        assert browser.get(f"/o/{INITECH.slug}/").status_code == 200
        session = rp.session(browser)
        assert session is not None
        assert session["organization_id"]
        assert session["mfa_organization_id"] == session["organization_id"]


def test_a_session_opened_without_mfa_is_stepped_up_before_it_may_enter(rp: RP) -> None:
    with initech_requires_mfa(rp):
        rp.op.use(sub=OLIVIA.sub, email=OLIVIA.email, name=OLIVIA.name)
        browser = rp.browser()
        assert attempt(rp, browser).response.status_code == 403  # refused: no MFA
        # A session opened before the requirement: sent to a fresh, non-silent authorization.
        rp.db.set_require_mfa(INITECH.slug, False)
        rp.op.use(sub=OLIVIA.sub, email=OLIVIA.email, name=OLIVIA.name)
        browser = rp.browser()
        assert attempt(rp, browser).response.status_code == 303
        assert browser.get(f"/o/{INITECH.slug}/").status_code == 200
        rp.db.set_require_mfa(INITECH.slug, True)
        step_up = browser.get(f"/o/{INITECH.slug}/")
        assert step_up.status_code == 303
        location = step_up.headers["location"]
        assert location.startswith(f"/o/{INITECH.slug}/login")
        assert "silent" not in location
        assert browser.get("/account/sessions").status_code == 200  # still signed in
        # Stepping up: the authorization asks for MFA, and a token showing it gets in.
        rp.op.use(sub=OLIVIA.sub, email=OLIVIA.email, name=OLIVIA.name, claims=MFA_AMR)
        to_op = browser.get(location)
        assert to_op.status_code == 303
        back = browser.client.get(to_op.headers["location"])
        assert rp.op.last_authorization.params["acr_values"] == MFA_POLICY
        landed = browser.client.get(back.headers["location"])
        assert landed.status_code == 303, landed.text
        assert browser.get(f"/o/{INITECH.slug}/").status_code == 200


def test_a_session_stepped_up_for_another_organization_does_not_count(rp: RP) -> None:
    with initech_requires_mfa(rp):
        rp.op.use(sub=OLIVIA.sub, email=OLIVIA.email, name=OLIVIA.name, claims=MFA_AMR)
        browser = rp.browser()
        assert attempt(rp, browser).response.status_code == 303
        assert browser.get(f"/o/{INITECH.slug}/").status_code == 200
        # The same session, as if its MFA had been for another organization.
        other = str(uuid.uuid4())
        rewrite_session(rp, browser, mfa_organization_id=other)
        before = rp.db.snapshot()
        refused = browser.get(f"/o/{INITECH.slug}/")
        assert refused.status_code == 303
        assert refused.headers["location"].startswith(f"/o/{INITECH.slug}/login")
        assert rp.db.snapshot() == before
        # And a sign-in whose token lacks MFA does not replace that session's MFA either.
        rp.op.use(sub=OLIVIA.sub, email=OLIVIA.email, name=OLIVIA.name)
        again = attempt(rp, browser)
        assert again.response.status_code == errors.MfaRequired.status_code
        assert browser.get(f"/o/{INITECH.slug}/").status_code == 303
        assert rp.db.snapshot() == before
