"""Self-service SSO over real HTTP: validation before saving, secrets encrypted and never shown,
the connection created at Auth0 (the dev IdP) and enabled on the organization."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest
from markupsafe import escape
from sqlalchemy import func, select

from saas.db.config import create_sqlalchemy_config
from saas.db.models import EnterpriseConnection, Organization, OutboxJob
from saas.sso.secrets import decrypt_secret
from tests.support.certificates import self_signed_pem
from tests.support.stack import Browser, Stack

CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
INITECH = "org_InitechDemo00003"


def metadata_xml(cert_pem: str) -> str:
    body = "".join(line for line in cert_pem.splitlines() if "CERTIFICATE" not in line)
    return f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.initech.example/saml">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
      <ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.initech.example/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"""


pytestmark = pytest.mark.stack(outbox_poll_seconds=0.2)


def olivia_on_initech(stack: Stack) -> Browser:
    browser = stack.browser()
    browser.login("olivia@ops.example")
    assert browser.follow(browser.get("/o/initech/login?silent=true")).status_code == 200
    return browser


FLASH = 'data-testid="flash"'


def save(browser: Browser, form: dict[str, str], *, htmx: bool = False) -> httpx.Response:
    page = browser.get("/o/initech/settings/sso/")
    token = CSRF.search(page.text)
    assert token, page.text
    return browser.client.post(
        browser.stack.app_url + "/o/initech/settings/sso/",
        data={"_csrf_token": token[1], **form},
        headers={"HX-Request": "true"} if htmx else {},
    )


def assert_said_once(browser: Browser, response: httpx.Response, message: str) -> None:
    """A plain post's redirect lands on the settings page, which says what was done, once."""
    assert response.headers["location"] == "/o/initech/settings/sso"
    page = browser.get(response.headers["location"])
    assert page.text.count(FLASH) == 1, page.text
    assert message in page.text
    assert FLASH not in browser.get("/o/initech/settings/sso/").text


async def rows(stack: Stack, statement: Any) -> list[Any]:
    config = create_sqlalchemy_config(stack.settings)
    try:
        async with config.get_session() as session:
            return list((await session.execute(statement)).scalars())
    finally:
        await config.get_engine().dispose()


def initech_connections(stack: Stack) -> list[EnterpriseConnection]:
    return asyncio.run(
        rows(
            stack,
            select(EnterpriseConnection)
            .join(Organization, Organization.id == EnterpriseConnection.organization_id)
            .where(Organization.slug == "initech"),
        )
    )


def test_oidc_connection_is_validated_encrypted_and_created_at_auth0(stack: Stack) -> None:
    browser = olivia_on_initech(stack)
    saved = save(
        browser,
        {
            "strategy": "oidc",
            "display_name": "Initech Okta",
            "discovery_url": stack.idp_url + "/.well-known/openid-configuration",
            "client_id": "initech-client",
            "client_secret": "s3cret-value-never-shown",
            "assign_membership_on_login": "on",
        },
    )
    assert saved.status_code == 303, saved.text
    assert_said_once(browser, saved, "The connection “Initech Okta” was saved.")
    page = browser.get("/o/initech/settings/sso/")
    assert "Initech Okta" in page.text
    assert "s3cret-value-never-shown" not in page.text
    assert "client secret is stored" in page.text
    (connection,) = initech_connections(stack)
    assert connection.strategy == "oidc"
    assert connection.auth0_connection_name.startswith("initech-oidc-")
    assert connection.secret_ciphertext
    assert "s3cret" not in connection.secret_ciphertext
    assert (
        decrypt_secret(stack.settings, connection.secret_ciphertext) == "s3cret-value-never-shown"
    )

    with stack.management() as mgmt:
        deadline = time.monotonic() + 15
        while True:
            found = mgmt.get(
                "/connections", params={"name": connection.auth0_connection_name}
            ).json()
            items = found["connections"] if isinstance(found, dict) else found
            enabled = mgmt.get(f"/organizations/{INITECH}/enabled_connections").json()
            enabled_ids = {
                e["connection_id"]
                for e in (
                    enabled if isinstance(enabled, list) else enabled.get("enabled_connections", [])
                )
            }
            if items and items[0]["id"] in enabled_ids:
                break
            assert time.monotonic() < deadline, (items, enabled)
            time.sleep(0.2)
        assert items[0]["strategy"] == "oidc"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"strategy": "oidc", "discovery_url": "ftp://idp.example/x", "client_id": "c"},
            "https:// URL",
        ),
        (
            {
                "strategy": "oidc",
                "discovery_url": "{idp}/nope/.well-known/openid-configuration",
                "client_id": "c",
            },
            "could not be fetched",
        ),
        (
            {
                "strategy": "oidc",
                "discovery_url": "{idp}/.well-known/openid-configuration",
                "client_id": "",
            },
            "client id",
        ),
        ({"strategy": "samlp", "metadata_xml": "<not-xml"}, "not well-formed XML"),
        (
            {
                "strategy": "samlp",
                "metadata_xml": "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><x>&a;</x>",
            },
            "not well-formed XML",
        ),
        (
            {"strategy": "samlp", "sign_in_url": "https://idp.example/sso", "signing_cert": "nope"},
            "not an X.509 certificate",
        ),
        ({"strategy": "ldap"}, "Choose SAML or OpenID Connect"),
    ],
)
def test_bad_configuration_is_refused_and_nothing_saved(
    stack: Stack, form: dict[str, str], message: str
) -> None:
    browser = olivia_on_initech(stack)
    jobs_before = len(asyncio.run(rows(stack, select(OutboxJob.id))))
    fields = {k: v.replace("{idp}", stack.idp_url) for k, v in form.items()}
    response = save(browser, {**fields, "client_secret": "typed-secret"})
    assert response.status_code == 422, response.status_code
    assert message in response.text
    # The form again, with what was typed (never the secret), on a page of its own.
    assert 'id="sso-form"' in response.text
    assert "<!doctype html>" in response.text.lower()
    assert "typed-secret" not in response.text
    # With htmx, the form alone, in place of the form on the page.
    fragment = save(browser, {**fields, "client_secret": "typed-secret"}, htmx=True)
    assert fragment.status_code == 422, fragment.status_code
    assert message in fragment.text
    assert fragment.headers["HX-Retarget"] == "#sso-form"
    assert fragment.text.lstrip().startswith("<form")
    assert "<html" not in fragment.text
    assert "typed-secret" not in fragment.text
    for name, value in fields.items():
        if name == "strategy":
            continue  # a radio button: only a known strategy is checked
        shown = escape(value)
        if name in {"metadata_xml", "signing_cert"}:
            assert f">{shown}</textarea>" in fragment.text, name
        else:
            assert f'value="{shown}"' in fragment.text, name
    assert initech_connections(stack) == []
    assert len(asyncio.run(rows(stack, select(OutboxJob.id)))) == jobs_before


def test_saml_metadata_and_delete(stack: Stack) -> None:
    browser = olivia_on_initech(stack)
    saved = save(
        browser,
        {
            "strategy": "samlp",
            "display_name": "Initech SAML",
            "metadata_xml": metadata_xml(self_signed_pem("idp.initech.example")),
        },
    )
    assert saved.status_code == 303, saved.text
    assert_said_once(browser, saved, "The connection “Initech SAML” was saved.")
    (connection,) = initech_connections(stack)
    assert connection.options["signInEndpoint"] == "https://idp.initech.example/sso"
    # Saved again through htmx: a full page load of the settings, which says so.
    resaved = save(
        browser,
        {
            "strategy": "samlp",
            "display_name": "Initech SAML 2",
            "metadata_xml": metadata_xml(self_signed_pem("idp.initech.example")),
        },
        htmx=True,
    )
    assert resaved.status_code == 200, resaved.text
    assert resaved.headers["HX-Redirect"] == "/o/initech/settings/sso"
    assert "location" not in resaved.headers
    page = browser.get("/o/initech/settings/sso/")
    assert page.text.count(FLASH) == 1
    assert "The connection “Initech SAML 2” was saved." in page.text
    page = browser.get("/o/initech/settings/sso/")
    token = CSRF.search(page.text)
    assert token
    deleted = browser.client.post(
        stack.app_url + "/o/initech/settings/sso/delete", data={"_csrf_token": token[1]}
    )
    assert deleted.status_code == 303
    assert_said_once(browser, deleted, "The SSO connection was deleted.")
    assert initech_connections(stack) == []
    kinds = asyncio.run(rows(stack, select(OutboxJob.kind)))
    assert "connection.sync" in kinds


def test_members_without_org_manage_cannot_configure(stack: Stack) -> None:
    bob = stack.browser()
    bob.login("bob@acme.example")
    assert bob.get("/o/acme/settings/sso/").status_code == 403
    count = asyncio.run(rows(stack, select(func.count()).select_from(EnterpriseConnection)))
    assert count == [2]
