"""Guided SSO set-up over real HTTP: the service-provider values and the metadata download, the
protocol chosen first, and a test sign-in through the dev IdP that ends on a result page with
the claims received (or the reason it failed) while the admin stays signed in as themselves."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from defusedxml import ElementTree
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.config import load_settings
from saas.db.models import (
    AuditEvent,
    EnterpriseConnection,
    Organization,
    OutboxJob,
    OutboxStatus,
)
from saas.sso.service_provider import saml_metadata, service_provider_values
from tests.support.stack import Browser, Stack, in_acme

# The worker would run (and settle) the jobs a test plants to hold a connection's sync state.
pytestmark = pytest.mark.stack(outbox_worker_enabled=False)
MD = "{urn:oasis:names:tc:SAML:2.0:metadata}"
SSO = "/o/acme/settings/sso/"


# What a configuration pointing at a real Auth0 tenant must have (no development secrets).
REAL = {
    "app_env": "test",
    "secret_key": "k" * 40,
    "auth0_client_secret": "c" * 40,
    "auth0_management_client_secret": "m" * 40,
}


def signed_in(stack: Stack, email: str) -> Browser:
    browser = stack.browser()
    assert browser.login(email).status_code == 200
    return browser


def test_values_follow_auth0s_rules_for_a_real_tenant_and_a_custom_domain() -> None:
    plain = load_settings(**REAL, auth0_domain="acme-prod.eu.auth0.com")
    values = service_provider_values(plain, "acme-saml")
    assert values.acs_url == "https://acme-prod.eu.auth0.com/login/callback?connection=acme-saml"
    assert values.entity_id == "urn:auth0:acme-prod:acme-saml"
    assert values.oidc_redirect_uri == "https://acme-prod.eu.auth0.com/login/callback"
    custom = load_settings(
        **REAL,
        auth0_domain="login.saas.example",
        auth0_management_domain="acme-prod.us.auth0.com",
    )
    values = service_provider_values(custom, "acme-saml")
    # People post back to the custom domain; the tenant is the canonical domain's first label.
    assert values.acs_url.startswith("https://login.saas.example/login/callback?")
    assert values.entity_id == "urn:auth0:acme-prod:acme-saml"
    document = ElementTree.fromstring(saml_metadata(values))
    assert document.get("entityID") == "urn:auth0:acme-prod:acme-saml"
    acs = document.find(f"{MD}SPSSODescriptor/{MD}AssertionConsumerService")
    assert acs is not None
    assert acs.get("Location") == values.acs_url
    assert acs.get("Binding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"


def test_settings_page_shows_the_values_and_the_metadata_downloads(stack: Stack) -> None:
    alice = signed_in(stack, "alice@acme.example")
    page = alice.get(SSO)
    assert page.status_code == 200
    idp = stack.idp_url
    assert f"{idp}/login/callback?connection=acme-saml" in page.text
    assert "urn:auth0:devidp:acme-saml" in page.text
    assert f"{idp}/login/callback<" in page.text  # the OIDC redirect URI
    assert 'value="samlp" checked' in page.text  # the saved connection's protocol
    assert 'data-testid="test-sign-in"' in page.text

    chosen = alice.get(SSO + "?protocol=oidc")
    assert 'value="oidc" checked' in chosen.text
    assert alice.get(SSO + "?protocol=nonsense").status_code == 200

    download = alice.get("/o/acme/settings/sso/metadata.xml")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/samlmetadata+xml")
    assert download.headers["content-disposition"] == (
        'attachment; filename="acme-saml-sp-metadata.xml"'
    )
    document = ElementTree.fromstring(download.content)
    assert document.get("entityID") == "urn:auth0:devidp:acme-saml"

    # An organization with no connection yet: nothing is chosen, the values are those of the
    # connection saving would create.
    olivia = signed_in(stack, "olivia@ops.example")
    assert olivia.follow(olivia.get("/o/initech/login?silent=true")).status_code == 200
    page = olivia.get("/o/initech/settings/sso/")
    assert "checked" not in page.text.split('id="sso-form"', 1)[1].split("</fieldset>", 1)[0]
    assert "connection=initech-saml-" in page.text
    assert 'data-testid="test-sign-in"' not in page.text


def start_test(browser: Browser) -> tuple[str, dict[str, list[str]]]:
    started = browser.get("/o/acme/settings/sso/test")
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    return location, parse_qs(urlsplit(location).query)


def test_a_test_sign_in_ends_on_the_result_page_with_the_claims(stack: Stack) -> None:
    alice = signed_in(stack, "alice@acme.example")
    before = audit_count(stack)
    location, query = start_test(alice)
    assert query["connection"] == ["acme-saml"]
    assert query["prompt"] == ["login"]  # the IdP asks again, whoever is signed in there
    # Bob signs in at the IdP (the IT admin's test account, say): alice stays alice.
    result = alice.sign_in_at_idp(alice.client.get(location), "bob@acme.example")
    assert str(result.url).endswith("/o/acme/settings/sso/test/result")
    assert result.status_code == 200
    assert 'data-testid="test-outcome">succeeded' in result.text
    assert 'data-claim="email">bob@acme.example' in result.text
    assert 'data-claim="connection">acme-saml' in result.text
    assert 'data-claim="org">org_AcmeDemo00000001' in result.text
    assert 'data-claim="sub">samlp|acme-saml|bob@acme.example' in result.text
    membership = result.text.split('data-testid="test-membership"', 1)[1][:200]
    assert membership.startswith(">This person is a member"), membership
    home = alice.get("/o/acme/")
    assert 'Signed in as <span class="break">alice@acme.example' in home.text
    assert audit_count(stack) == before  # a test signs nobody in: no sign-in event


def test_a_refused_test_sign_in_says_why(stack: Stack) -> None:
    alice = signed_in(stack, "alice@acme.example")
    _, query = start_test(alice)
    # The IdP answers with an error (the person is not allowed in): the result page says so.
    refused = alice.follow(
        alice.get(
            "/callback",
            params={"state": query["state"][0], "error": "access_denied", "error_description": "x"},
        )
    )
    assert refused.status_code == 200
    assert 'data-testid="test-outcome">failed' in refused.text
    assert "does not have access to this organization" in refused.text
    assert "provider_error" in refused.text
    assert alice.get("/o/acme/").status_code == 200


def audit_count(stack: Stack) -> int:
    async def work(session: AsyncSession, org: Organization) -> int:
        return int(
            await session.scalar(
                select(func.count(AuditEvent.id)).where(AuditEvent.action == "auth.login")
            )
            or 0
        )

    return in_acme(stack.settings, work)


@pytest.mark.parametrize("status", [OutboxStatus.PENDING, OutboxStatus.FAILED])
def test_no_test_sign_in_while_the_connection_is_not_in_step(
    stack: Stack, status: OutboxStatus
) -> None:
    async def job(session: AsyncSession, org: Organization) -> None:
        connection = (
            await session.execute(
                select(EnterpriseConnection).where(EnterpriseConnection.organization_id == org.id)
            )
        ).scalar_one()
        session.add(
            OutboxJob(
                kind="connection.sync",
                payload={},
                status=status.value,
                attempts=8 if status is OutboxStatus.FAILED else 0,
                organization_id=org.id,
                target_type="connection",
                target_id=connection.id,
                last_error="PATCH x: 500 boom" if status is OutboxStatus.FAILED else None,
            )
        )

    in_acme(stack.settings, job)
    alice = signed_in(stack, "alice@acme.example")
    page = alice.get(SSO)
    assert 'data-testid="test-sign-in-disabled"' in page.text
    assert 'data-testid="test-sign-in"' not in page.text
    assert f'data-sync="{status.value}"' in page.text
    assert alice.get("/o/acme/settings/sso/test").status_code == 422
