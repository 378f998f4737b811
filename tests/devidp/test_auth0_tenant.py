"""What the dev IdP does as an Auth0 tenant configured per the README ("Auth0 tenant: sign-in
and sign-out"): Auth0-shaped user ids per strategy, the post-login Action's connection claim,
and profile claims that may come only from /userinfo."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from .conftest import DevIdpServer
from .test_code_flow import login, verify


def _tenant(devidp: DevIdpServer, changes: object, **kwargs: object) -> httpx.Response:
    return httpx.patch(devidp.base_url + "/__dev/tenant", json=changes, timeout=10, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def tenant(devidp: DevIdpServer) -> Iterator[None]:
    """Put the shared dev IdP's tenant back as it was, whatever the test changed."""
    before = httpx.get(devidp.base_url + "/__dev/tenant").json()
    yield
    assert _tenant(devidp, before).status_code == 200


def _connection(mgmt: httpx.Client, devidp: DevIdpServer, name: str, strategy: str) -> None:
    options: dict[str, object] = {"domain_aliases": [f"{name}.example"]}
    if strategy == "oidc":
        options["issuer"] = f"https://idp.{name}.example/"
    created = mgmt.post(
        "/connections",
        json={
            "name": name,
            "strategy": strategy,
            "options": options,
            "enabled_clients": [devidp.settings.auth0_client_id],
        },
    )
    assert created.status_code == 201, created.text


# What each strategy's Auth0 user id looks like (saas/devidp/login_pages.py cites the sources).
USER_IDS = {
    "waad": lambda _name, _email: r"waad\|[0-9a-f]{24}",
    "google-apps": lambda _name, email: rf"google-apps\|{re.escape(email)}",
    "okta": lambda name, _email: rf"okta\|{re.escape(name)}\|[0-9a-f]{{24}}",
    "oidc": lambda name, _email: rf"oidc\|{re.escape(name)}\|[0-9a-f]{{24}}",
}


@pytest.mark.parametrize("strategy", sorted(USER_IDS))
def test_user_ids_per_strategy_and_the_connection_claim(
    devidp: DevIdpServer, browser: httpx.Client, mgmt: httpx.Client, strategy: str
) -> None:
    name = f"ids-{strategy}"
    _connection(mgmt, devidp, name, strategy)
    email = f"pat@{name}.example"
    _, token, _ = login(devidp, browser, email, organization=None, connection=name)
    claims = verify(devidp, token["id_token"], devidp.settings.auth0_client_id)
    assert re.fullmatch(USER_IDS[strategy](name, email), claims["sub"]), claims["sub"]
    # The README's Action: event.connection.name, whatever the id looks like.
    assert claims[devidp.settings.auth0_connection_claim] == name


def test_three_part_saml_ids_carry_the_claim_too(
    devidp: DevIdpServer, browser: httpx.Client
) -> None:
    _, token, _ = login(devidp, browser, "bob@acme.example")
    claims = verify(devidp, token["id_token"], devidp.settings.auth0_client_id)
    assert claims["sub"] == "samlp|acme-saml|bob@acme.example"
    assert claims[devidp.settings.auth0_connection_claim] == "acme-saml"


@pytest.mark.usefixtures("tenant")
def test_no_connection_claim_without_the_action(
    devidp: DevIdpServer, browser: httpx.Client
) -> None:
    assert _tenant(devidp, {"connection_claim_action": False}).json() == {
        "connection_claim_action": False,
        "email_in_id_token": True,
        "methods_claim_action": True,
    }
    _, token, _ = login(devidp, browser, "alice@acme.example")
    claims = verify(devidp, token["id_token"], devidp.settings.auth0_client_id)
    assert devidp.settings.auth0_connection_claim not in claims
    assert claims["email"] == "alice@acme.example"


@pytest.mark.usefixtures("tenant")
def test_email_only_at_userinfo_when_the_tenant_says_so(
    devidp: DevIdpServer, browser: httpx.Client
) -> None:
    assert _tenant(devidp, {"email_in_id_token": False}).status_code == 200
    _, token, _ = login(devidp, browser, "alice@acme.example")
    claims = verify(devidp, token["id_token"], devidp.settings.auth0_client_id)
    assert "email" not in claims
    assert "email_verified" not in claims
    assert claims["name"] == "Alice Anderson"  # the other profile claims stay
    info = httpx.get(
        devidp.base_url + "/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert info.status_code == 200
    assert info.json()["sub"] == claims["sub"]
    assert info.json()["email"] == "alice@acme.example"
    assert info.json()["email_verified"] is True


@pytest.mark.usefixtures("tenant")
def test_tenant_settings_take_json_booleans_only(devidp: DevIdpServer) -> None:
    defaults = httpx.get(devidp.base_url + "/__dev/tenant").json()
    form = httpx.patch(
        devidp.base_url + "/__dev/tenant", data={"email_in_id_token": "false"}, timeout=10
    )
    assert form.status_code == 415  # a cross-site form cannot send JSON
    assert _tenant(devidp, {"no_such_setting": True}).status_code == 400
    assert _tenant(devidp, {"email_in_id_token": "false"}).status_code == 400
    assert _tenant(devidp, ["email_in_id_token"]).status_code == 400
    assert httpx.get(devidp.base_url + "/__dev/tenant").json() == defaults
