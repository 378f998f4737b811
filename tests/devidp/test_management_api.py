"""Management API: auth and scopes, and every endpoint family's JSON shape against Auth0's."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from saas.devidp.seed import ROLE_IDS

from .conftest import APP_BASE, DevIdpServer

ACME = "org_AcmeDemo00000001"
ERROR_KEYS = {"statusCode", "error", "message", "errorCode"}


def token_with(devidp: DevIdpServer, scope: str) -> str:
    response = httpx.post(
        devidp.base_url + "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": devidp.settings.auth0_management_client_id,
            "client_secret": devidp.settings.auth0_management_client_secret.get_secret_value(),
            "audience": devidp.settings.auth0_management_audience,
            "scope": scope,
        },
    )
    return str(response.json()["access_token"])


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["statusCode"] == status
    return body


def test_requires_bearer_token_and_scope(devidp: DevIdpServer) -> None:
    api = devidp.base_url + "/api/v2"
    assert_error(httpx.get(api + "/organizations"), 401)
    assert_error(httpx.get(api + "/organizations", headers={"Authorization": "Bearer junk"}), 401)
    read_only = {"Authorization": f"Bearer {token_with(devidp, 'read:organizations')}"}
    assert httpx.get(api + "/organizations", headers=read_only).status_code == 200
    body = assert_error(
        httpx.post(api + "/organizations", json={"name": "x"}, headers=read_only), 403
    )
    assert body["errorCode"] == "insufficient_scope"
    assert body["message"] == "Insufficient scope, expected any of: create:organizations"
    # A user access token (wrong audience) is not a Management API token.
    assert_error(httpx.get(api + "/roles", headers=read_only), 403)


def test_organizations(mgmt: httpx.Client) -> None:
    created = mgmt.post(
        "/organizations",
        json={"name": "initrode", "display_name": "Initrode", "metadata": {"tier": "gold"}},
    )
    assert created.status_code == 201
    org = created.json()
    assert re.fullmatch(r"org_[A-Za-z0-9]{16}", org["id"])
    assert org == {
        "id": org["id"],
        "name": "initrode",
        "display_name": "Initrode",
        "metadata": {"tier": "gold"},
    }
    assert mgmt.get(f"/organizations/{org['id']}").json() == org
    assert mgmt.get("/organizations/name/initrode").json() == org
    assert_error(mgmt.post("/organizations", json={"name": "initrode"}), 409)
    for bad in ("Upper", "", "-leading", "a" * 51, "spa ce"):
        assert_error(mgmt.post("/organizations", json={"name": bad}), 400)
    assert_error(mgmt.post("/organizations", json={"name": "ok", "bogus": 1}), 400)
    patched = mgmt.patch(f"/organizations/{org['id']}", json={"display_name": "Initrode Inc"})
    assert patched.status_code == 200
    assert patched.json()["display_name"] == "Initrode Inc"
    listing = mgmt.get("/organizations")
    assert isinstance(listing.json(), list)
    assert {"acme", "globex", "initech", "initrode"} <= {o["name"] for o in listing.json()}
    totals = mgmt.get("/organizations", params={"include_totals": "true", "per_page": 2}).json()
    assert set(totals) == {"organizations", "start", "limit", "total"}
    assert len(totals["organizations"]) == 2
    page = mgmt.get("/organizations", params={"take": 2}).json()
    assert set(page) == {"organizations", "next"}
    rest = mgmt.get("/organizations", params={"take": 50, "from": page["next"]}).json()
    assert "next" not in rest
    assert {o["id"] for o in page["organizations"]}.isdisjoint(
        {o["id"] for o in rest["organizations"]}
    )
    assert mgmt.delete(f"/organizations/{org['id']}").status_code == 204
    body = assert_error(mgmt.get(f"/organizations/{org['id']}"), 404)
    assert body["error"] == "Not Found"


def test_enabled_connections(mgmt: httpx.Client) -> None:
    org = mgmt.post("/organizations", json={"name": "conn-test"}).json()
    listed = mgmt.get(f"/organizations/{ACME}/enabled_connections").json()
    assert {c["connection"]["name"] for c in listed} == {
        "acme-saml",
        "Username-Password-Authentication",
    }
    for item in listed:
        assert set(item) == {
            "connection_id",
            "assign_membership_on_login",
            "show_as_button",
            "is_signup_enabled",
            "connection",
        }
        assert set(item["connection"]) == {"name", "strategy"}
    added = mgmt.post(
        f"/organizations/{org['id']}/enabled_connections",
        json={"connection_id": "con_AcmeSamlDemo0001", "assign_membership_on_login": False},
    )
    assert added.status_code == 201
    assert added.json()["connection"] == {"name": "acme-saml", "strategy": "samlp"}
    assert_error(
        mgmt.post(
            f"/organizations/{org['id']}/enabled_connections",
            json={"connection_id": "con_AcmeSamlDemo0001"},
        ),
        409,
    )
    assert_error(
        mgmt.post(
            f"/organizations/{org['id']}/enabled_connections", json={"connection_id": "con_nope"}
        ),
        404,
    )
    one = mgmt.get(f"/organizations/{org['id']}/enabled_connections/con_AcmeSamlDemo0001")
    assert one.json()["connection_id"] == "con_AcmeSamlDemo0001"
    removed = mgmt.delete(f"/organizations/{org['id']}/enabled_connections/con_AcmeSamlDemo0001")
    assert removed.status_code == 204
    assert mgmt.get(f"/organizations/{org['id']}/enabled_connections").json() == []


def test_members_and_member_roles(mgmt: httpx.Client) -> None:
    org = mgmt.post("/organizations", json={"name": "members-test"}).json()
    base = f"/organizations/{org['id']}/members"
    users = [
        "samlp|acme-saml|alice@acme.example",
        "samlp|acme-saml|bob@acme.example",
        "oidc|globex-oidc|7d1c2f0e-gina",
    ]
    assert mgmt.post(base, json={"members": users}).status_code == 204
    assert_error(mgmt.post(base, json={"members": [f"auth0|{i}" for i in range(11)]}), 400)
    assert_error(mgmt.post(base, json={"members": []}), 400)
    assert_error(mgmt.post(base, json={"members": ["auth0|nobody"]}), 404)
    first = mgmt.get(base, params={"take": 2}).json()
    assert set(first) == {"members", "next"}
    assert len(first["members"]) == 2
    assert set(first["members"][0]) == {"user_id", "picture", "name", "email"}
    second = mgmt.get(base, params={"take": 2, "from": first["next"]}).json()
    assert set(second) == {"members"}
    assert {m["user_id"] for m in first["members"] + second["members"]} == set(users)
    roles_url = f"{base}/{users[0]}/roles"
    assert mgmt.post(roles_url, json={"roles": [ROLE_IDS["admin"]]}).status_code == 204
    assert mgmt.get(roles_url).json() == [
        {
            "id": ROLE_IDS["admin"],
            "name": "admin",
            "description": "Manages members, settings, SSO and the audit log",
        }
    ]
    with_roles = mgmt.get(base, params={"fields": "user_id,roles"}).json()
    alice = next(m for m in with_roles if m["user_id"] == users[0])
    assert alice["roles"] == [{"id": ROLE_IDS["admin"], "name": "admin"}]
    assert_error(mgmt.post(roles_url, json={"roles": ["rol_doesnotexist0000"]}), 404)
    assert mgmt.request("DELETE", roles_url, json={"roles": [ROLE_IDS["admin"]]}).status_code == 204
    assert mgmt.get(roles_url).json() == []
    assert mgmt.request("DELETE", base, json={"members": [users[0]]}).status_code == 204
    assert users[0] not in {m["user_id"] for m in mgmt.get(base).json()}
    assert_error(mgmt.get(roles_url), 404)


def test_invitations(devidp: DevIdpServer, mgmt: httpx.Client) -> None:
    body = {
        "inviter": {"name": "Alice Anderson"},
        "invitee": {"email": "new.hire@acme.example"},
        "client_id": devidp.settings.auth0_client_id,
        "connection_id": "con_AcmeSamlDemo0001",
        "ttl_sec": 3600,
        "roles": [ROLE_IDS["member"]],
        "send_invitation_email": False,
    }
    created = mgmt.post(f"/organizations/{ACME}/invitations", json=body)
    # Auth0 answers 200 to a created invitation (saas/devidp/management/invitations.py).
    assert created.status_code == 200, created.text
    inv = created.json()
    assert set(inv) == {
        "id",
        "organization_id",
        "inviter",
        "invitee",
        "invitation_url",
        "created_at",
        "expires_at",
        "client_id",
        "connection_id",
        "app_metadata",
        "user_metadata",
        "roles",
        "ticket_id",
    }
    assert re.fullmatch(r"uinv_[A-Za-z0-9]{16}", inv["id"])
    assert inv["invitation_url"] == (
        f"{APP_BASE}/invitation?invitation={inv['ticket_id']}&organization={ACME}&organization_name=acme"
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", inv["created_at"])
    assert inv["roles"] == [ROLE_IDS["member"]]
    assert inv["inviter"] == {"name": "Alice Anderson"}
    assert inv["invitee"] == {"email": "new.hire@acme.example"}
    assert mgmt.get(f"/organizations/{ACME}/invitations/{inv['id']}").json() == inv
    assert inv["id"] in {i["id"] for i in mgmt.get(f"/organizations/{ACME}/invitations").json()}
    for address in ("nope", "a\x00b@example.org", "<x>@acme.example", "a@acme.example\n"):
        assert_error(
            mgmt.post(
                f"/organizations/{ACME}/invitations", json={**body, "invitee": {"email": address}}
            ),
            400,
        )
    assert_error(
        mgmt.post(
            f"/organizations/{ACME}/invitations",
            json={**body, "connection_id": "con_GlobexOidcDemo01"},
        ),
        400,
    )
    assert mgmt.delete(f"/organizations/{ACME}/invitations/{inv['id']}").status_code == 204
    assert_error(mgmt.get(f"/organizations/{ACME}/invitations/{inv['id']}"), 404)


def test_roles(mgmt: httpx.Client) -> None:
    roles = mgmt.get("/roles").json()
    assert {r["name"]: r["id"] for r in roles} == {str(k): v for k, v in ROLE_IDS.items()}
    for role in roles:
        assert set(role) == {"id", "name", "description"}
        assert re.fullmatch(r"rol_[A-Za-z0-9]{16}", role["id"])
    assert [r["name"] for r in mgmt.get("/roles", params={"name_filter": "adm"}).json()] == [
        "admin"
    ]


def test_connections(mgmt: httpx.Client) -> None:
    listed = mgmt.get("/connections").json()
    names = {c["name"] for c in listed}
    assert {"acme-saml", "globex-oidc", "Username-Password-Authentication"} <= names
    for conn in listed:
        assert {
            "id",
            "name",
            "display_name",
            "strategy",
            "options",
            "realms",
            "is_domain_connection",
            "enabled_clients",
            "metadata",
        } <= set(conn)
    assert [c["name"] for c in mgmt.get("/connections", params={"name": "acme-saml"}).json()] == [
        "acme-saml"
    ]
    assert {
        c["strategy"] for c in mgmt.get("/connections", params={"strategy": "oidc"}).json()
    } == {"oidc"}
    created = mgmt.post(
        "/connections",
        json={
            "name": "initech-oidc",
            "strategy": "oidc",
            "display_name": "Initech OIDC",
            "options": {
                "discovery_url": "https://idp.initech.example/.well-known/openid-configuration",
                "domain_aliases": ["initech.example"],
            },
        },
    )
    assert created.status_code == 201, created.text
    conn = created.json()
    assert re.fullmatch(r"con_[A-Za-z0-9]{16}", conn["id"])
    assert_error(
        mgmt.post(
            "/connections",
            json={"name": "initech-oidc", "strategy": "oidc", "options": {"issuer": "x"}},
        ),
        409,
    )
    assert_error(mgmt.post("/connections", json={"name": "x", "strategy": "facebook"}), 400)
    assert_error(mgmt.post("/connections", json={"name": "bad_name!", "strategy": "auth0"}), 400)
    assert mgmt.get(f"/connections/{conn['id']}").json() == conn
    patched = mgmt.patch(f"/connections/{conn['id']}", json={"display_name": "Initech SSO"}).json()
    assert patched["display_name"] == "Initech SSO"
    assert_error(mgmt.patch(f"/connections/{conn['id']}", json={"strategy": "samlp"}), 400)


def test_users(mgmt: httpx.Client) -> None:
    user = mgmt.get("/users/samlp|acme-saml|alice@acme.example").json()
    assert user["user_id"] == "samlp|acme-saml|alice@acme.example"
    assert user["identities"] == [
        {
            "connection": "acme-saml",
            "provider": "samlp",
            "user_id": "acme-saml|alice@acme.example",
            "isSocial": False,
        }
    ]
    assert {
        "email",
        "email_verified",
        "name",
        "nickname",
        "picture",
        "created_at",
        "updated_at",
        "logins_count",
    } <= set(user)
    assert_error(mgmt.get("/users/auth0|nobody"), 404)
    orgs = mgmt.get("/users/auth0|65f0c0ffee00000000000001/organizations").json()
    assert {o["name"] for o in orgs} >= {"initech", "globex"}


@pytest.mark.parametrize("scope", ["read:organization_members"])
def test_member_roles_field_needs_its_scope(devidp: DevIdpServer, scope: str) -> None:
    headers = {"Authorization": f"Bearer {token_with(devidp, scope)}"}
    url = devidp.base_url + f"/api/v2/organizations/{ACME}/members"
    assert httpx.get(url, headers=headers).status_code == 200
    assert_error(httpx.get(url, params={"fields": "roles"}, headers=headers), 403)
