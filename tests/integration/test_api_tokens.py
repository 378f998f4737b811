"""Bearer-token checks of the JSON API, with tokens from the dev IdP (and, for the cases the IdP
will not issue, tokens signed with the dev IdP's own key)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from saas.db.models import Organization
from saas.devidp.keys import KeyStore
from tests.support.stack import Stack, in_acme
from tests.support.tokens import access_token_for, mfa_access_token_for

ACME = "org_AcmeDemo00000001"
GLOBEX = "org_GlobexDemo000002"


def token_of(stack: Stack, email: str, org: str = ACME) -> str:
    browser = stack.browser()
    browser.login(email)
    return access_token_for(browser, org)


def forged_claims(stack: Stack, **overrides: Any) -> dict[str, Any]:
    """An access token's claims for Alice at acme, with `overrides` (None drops a claim)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": stack.settings.auth0_issuer,
        "sub": "samlp|acme-saml|alice@acme.example",
        "aud": [stack.settings.auth0_audience],
        "iat": now,
        "exp": now + 600,
        "org_id": ACME,
        "permissions": ["org:read", "members:read"],
        "scope": "openid",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def forged(stack: Stack, **overrides: Any) -> str:
    """A token signed by the dev IdP's active key, with claims the IdP itself would not issue."""
    keys = KeyStore(stack.settings.devidp_key_path)
    keys.load()
    key = keys.active
    claims = forged_claims(stack, **overrides)
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


def call(
    stack: Stack,
    token: str | None,
    path: str = "/api/v1/orgs/acme/members",
    method: str = "GET",
    **kw: Any,
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, stack.app_url + path, headers=headers, timeout=10, **kw)


def test_real_token_lists_members_with_pagination_and_search(stack: Stack) -> None:
    token = token_of(stack, "alice@acme.example")
    page = call(stack, token, params={"limit": 2, "sort": "email"})
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == 4
    assert body["total_is_lower_bound"] is False
    assert body["previous_cursor"] is None
    assert [m["email"] for m in body["items"]] == ["adam@acme.example", "alice@acme.example"]
    second = call(stack, token, params={"limit": 2, "sort": "email", "after": body["next_cursor"]})
    assert second.status_code == 200, second.text
    rest = second.json()
    assert [m["email"] for m in rest["items"]] == ["bob@acme.example", "vera@acme.example"]
    assert rest["next_cursor"] is None
    back = call(
        stack, token, params={"limit": 2, "sort": "email", "before": rest["previous_cursor"]}
    )
    assert [m["email"] for m in back.json()["items"]] == ["adam@acme.example", "alice@acme.example"]
    # A cursor is bound to its sort; bad cursors and sorts are clear 422 problems.
    for params, field in [
        ({"sort": "name", "after": body["next_cursor"]}, "after"),
        ({"after": "not-a-cursor"}, "after"),
        ({"before": "e30"}, "before"),
        ({"sort": "password"}, "sort"),
        ({"after": body["next_cursor"], "before": body["next_cursor"], "sort": "email"}, "after"),
    ]:
        refused = call(stack, token, params=params)
        assert refused.status_code == 422, (params, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["field"] == field, refused.json()
    found = call(stack, token, params={"q": "VERA"}).json()
    assert [m["email"] for m in found["items"]] == ["vera@acme.example"]
    by_id = call(stack, token, path=f"/api/v1/orgs/{ACME}/members")
    assert by_id.status_code == 200


def test_missing_token_is_401_with_a_bearer_challenge(stack: Stack) -> None:
    response = call(stack, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": ["https://another-api.example"]}, "wrong audience"),
        ({"iss": "https://evil.example/"}, "wrong issuer"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"sub": None}, "no subject"),
    ],
)
def test_invalid_tokens_are_401(stack: Stack, overrides: dict[str, Any], reason: str) -> None:
    response = call(stack, forged(stack, **overrides))
    assert response.status_code == 401, reason
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_token_for_another_tenant_is_404(stack: Stack) -> None:
    gina = token_of(stack, "gina@globex.example", "org_GlobexDemo000002")
    assert call(stack, gina, path="/api/v1/orgs/globex/members").status_code == 200
    response = call(stack, gina, path="/api/v1/orgs/acme/members")
    assert response.status_code == 404  # as for an organization that does not exist
    assert response.headers["content-type"] == "application/problem+json"


def test_permissions_claim_and_live_role_must_both_allow(stack: Stack) -> None:
    # alice is an owner, but this token only carries read permissions.
    narrow = forged(stack)
    assert call(stack, narrow).status_code == 200
    create = call(
        stack, narrow, path="/api/v1/orgs/acme/projects", method="POST", json={"name": "X"}
    )
    assert create.status_code == 403
    # bob is a member: a token claiming members:manage does not make him one.
    bob = forged(
        stack,
        sub="samlp|acme-saml|bob@acme.example",
        permissions=["members:manage", "members:read"],
    )
    members = call(stack, bob).json()["items"]
    target = next(m for m in members if m["email"] == "vera@acme.example")
    response = call(stack, bob, path=f"/api/v1/orgs/acme/members/{target['id']}", method="DELETE")
    assert response.status_code == 403


def test_removed_member_with_a_still_valid_token_is_refused(stack: Stack) -> None:
    bob = token_of(stack, "bob@acme.example")
    assert call(stack, bob).status_code == 200
    alice = token_of(stack, "alice@acme.example")
    members = call(stack, alice).json()["items"]
    bob_membership = next(m for m in members if m["email"] == "bob@acme.example")
    removed = call(
        stack, alice, path=f"/api/v1/orgs/acme/members/{bob_membership['id']}", method="DELETE"
    )
    assert removed.status_code == 204
    response = call(stack, bob)
    assert response.status_code == 403
    assert "not a member" in response.json()["detail"]


def test_last_owner_and_bad_input_are_clear_problems(stack: Stack) -> None:
    alice = token_of(stack, "alice@acme.example")
    me = next(m for m in call(stack, alice).json()["items"] if m["email"] == "alice@acme.example")
    demote = call(
        stack,
        alice,
        path=f"/api/v1/orgs/acme/members/{me['id']}",
        method="PATCH",
        json={"role": "admin"},
    )
    assert demote.status_code == 409
    assert "last owner" in demote.json()["detail"]
    bad_role = call(
        stack,
        alice,
        path=f"/api/v1/orgs/acme/members/{me['id']}",
        method="PATCH",
        json={"role": "god"},
    )
    assert bad_role.status_code == 422
    assert bad_role.json()["field"] == "role"
    unknown_field = call(
        stack,
        alice,
        path="/api/v1/orgs/acme/projects",
        method="POST",
        json={"name": "A", "owner": "x"},
    )
    assert unknown_field.status_code == 422
    bad_email = call(
        stack, alice, path="/api/v1/orgs/acme/invitations", method="POST", json={"email": "nope"}
    )
    assert bad_email.status_code == 422
    missing = call(
        stack, alice, path="/api/v1/orgs/acme/projects/0190a0e0-0000-7000-8000-000000000000"
    )
    assert missing.status_code == 404


def test_project_of_another_tenant_is_not_found(stack: Stack) -> None:
    grace = token_of(stack, "grace@globex.example", "org_GlobexDemo000002")
    created = call(
        stack, grace, path="/api/v1/orgs/globex/projects", method="POST", json={"name": "Secret"}
    )
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    alice = token_of(stack, "alice@acme.example")
    for method in ("GET", "PATCH", "DELETE"):
        response = call(
            stack,
            alice,
            path=f"/api/v1/orgs/acme/projects/{project_id}",
            method=method,
            json={"name": "Stolen"} if method == "PATCH" else None,
        )
        assert response.status_code == 404, method
    assert (
        call(stack, grace, path=f"/api/v1/orgs/globex/projects/{project_id}").json()["name"]
        == "Secret"
    )


def test_openapi_documents_the_api(stack: Stack) -> None:
    spec = httpx.get(stack.app_url + "/api/docs/openapi.json").json()
    paths = set(spec["paths"])
    assert "/api/v1/orgs/{org}/members" in paths
    assert all(p.startswith("/api/") for p in paths), paths
    assert spec["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"


# ---- Organizations that require multi-factor authentication --------------------------------


def require_mfa_in_acme(stack: Stack) -> None:
    async def write(session: AsyncSession, org: Organization) -> None:
        await session.execute(
            update(Organization).where(Organization.id == org.id).values(require_mfa=True)
        )

    in_acme(stack.settings, write)


def acme_projects(stack: Stack, token: str) -> list[str]:
    listed = call(stack, token, path="/api/v1/orgs/acme/projects", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    return [p["name"] for p in listed.json()["items"]]


def test_a_token_without_mfa_is_refused_by_an_organization_that_requires_it(
    stack: Stack,
) -> None:
    browser = stack.browser()
    assert browser.login("alice@acme.example").status_code == 200
    plain = access_token_for(browser, ACME)
    require_mfa_in_acme(stack)
    for method, path, body in [
        ("GET", "/api/v1/orgs/acme/members", None),
        ("POST", "/api/v1/orgs/acme/projects", {"name": "Written without MFA"}),
    ]:
        refused = call(stack, plain, path=path, method=method, json=body)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["code"] == "mfa_required"
        assert problem["title"] == "Multi-factor authentication required"
        assert "multi-factor" in problem["detail"]
        assert "acr_values" in problem["detail"]  # how to get a token that will do
    # The same person, after the second factor: the token says so, and the API answers.
    token, _ = mfa_access_token_for(browser, ACME)
    claims = jwt.decode(token, options={"verify_signature": False})
    # Alice signs in through Acme's SAML connection: Auth0 names that first factor "federated".
    assert claims[stack.settings.auth0_amr_claim] == ["federated", "mfa"]
    assert call(stack, token).status_code == 200
    names = acme_projects(stack, token)
    assert "Written without MFA" not in names  # the refused write wrote nothing
    created = call(
        stack, token, path="/api/v1/orgs/acme/projects", method="POST", json={"name": "With MFA"}
    )
    assert created.status_code == 201, created.text


def test_tokens_without_a_challenge_of_their_own_carry_no_methods_claim(stack: Stack) -> None:
    browser = stack.browser()
    assert browser.login("bob@acme.example").status_code == 200
    require_mfa_in_acme(stack)
    _, secret = mfa_access_token_for(browser, ACME)
    # The IdP session passed MFA a moment ago; a silent authorization still has no challenge
    # of its own, so its token does not say MFA (as the ID token has no `amr` then).
    silent = access_token_for(browser, ACME)
    claims = jwt.decode(silent, options={"verify_signature": False})
    assert stack.settings.auth0_amr_claim not in claims
    assert call(stack, silent).json()["code"] == "mfa_required"
    # Enrolled already: the next token is a challenge, not an enrollment, and says MFA too.
    again, _ = mfa_access_token_for(browser, ACME, secret)
    assert call(stack, again).status_code == 200


def test_a_tenant_without_the_methods_action_gets_no_api_access_to_such_organizations(
    stack: Stack,
) -> None:
    """Auth0 configured without the README's Action: the second factor is done, the access
    token does not say so, and the API refuses rather than assume."""
    browser = stack.browser()
    assert browser.login("bob@acme.example").status_code == 200
    require_mfa_in_acme(stack)
    changed = httpx.patch(
        stack.idp_url + "/__dev/tenant", json={"methods_claim_action": False}, timeout=10
    )
    assert changed.status_code == 200, changed.text
    token, _ = mfa_access_token_for(browser, ACME)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert stack.settings.auth0_amr_claim not in claims
    assert call(stack, token).json()["code"] == "mfa_required"


def test_an_organization_without_the_requirement_is_unaffected(stack: Stack) -> None:
    require_mfa_in_acme(stack)
    gina = token_of(stack, "gina@globex.example", GLOBEX)
    claims = jwt.decode(gina, options={"verify_signature": False})
    assert stack.settings.auth0_amr_claim not in claims
    response = call(stack, gina, path="/api/v1/orgs/globex/members")
    assert response.status_code == 200, response.text
    # And a token of another organization is still told only "not found", MFA or not.
    refused = call(stack, gina, path="/api/v1/orgs/acme/members")
    assert refused.status_code == 404
    assert "code" not in refused.json()


@pytest.mark.parametrize(
    "methods",
    [["pwd"], "mfa", {"mfa": True}, [["mfa"]], [], None],
    ids=["first-factor-only", "string", "object", "nested", "empty", "absent"],
)
def test_only_a_list_holding_mfa_will_do(stack: Stack, methods: object) -> None:
    require_mfa_in_acme(stack)
    claim = stack.settings.auth0_amr_claim
    response = call(stack, forged(stack, **{claim: methods}))
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "mfa_required"
    # The ID token's claim name is not the access token's: `amr` itself proves nothing here.
    assert call(stack, forged(stack, amr=["mfa"])).json()["code"] == "mfa_required"
    assert call(stack, forged(stack, **{claim: ["federated", "mfa"]})).status_code == 200


def test_a_spoofed_methods_claim_does_not_pass(stack: Stack) -> None:
    require_mfa_in_acme(stack)
    claim = stack.settings.auth0_amr_claim
    claims = forged_claims(stack, scope=None, **{claim: ["pwd", "mfa"]})
    unsigned = jwt.encode(claims, "", algorithm="none")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    keys = KeyStore(stack.settings.devidp_key_path)
    keys.load()
    # Another key under the IdP's own kid, and under a kid of its own.
    same_kid = jwt.encode(claims, pem, algorithm="RS256", headers={"kid": keys.active.kid})
    own_kid = jwt.encode(claims, pem, algorithm="RS256", headers={"kid": "attacker"})
    # A real MFA-less token with the claim pasted into its payload (signature unchanged).
    browser = stack.browser()
    assert browser.login("alice@acme.example").status_code == 200
    header, body, signature = access_token_for(browser, ACME).split(".")
    real = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    spoofed = json.dumps({**real, claim: ["pwd", "mfa"]}).encode()
    payload = base64.urlsafe_b64encode(spoofed).rstrip(b"=").decode()
    pasted = ".".join([header, payload, signature])
    for token in (unsigned, same_kid, own_kid, pasted):
        response = call(stack, token)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == "application/problem+json"
