"""Directory sync over SCIM 2.0, over real HTTP on SQLite and PostgreSQL: the request sequences
Okta and Microsoft Entra ID send, what they do to memberships, roles and sessions, the refusals
(SCIM errors, never a 500), and the isolation of one organization's token from another's."""

from __future__ import annotations

import asyncio
import datetime
import re
import threading
import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.db.locks import lock_organization
from saas.db.models import (
    AuditEvent,
    DirectorySyncError,
    DirectoryUser,
    Membership,
    Organization,
    OutboxJob,
    ScimToken,
    User,
)
from saas.scim.tokens import hash_token, new_token
from tests.support.scim import (
    ENTERPRISE,
    GROUP_SCHEMA,
    SCIM_JSON,
    USER_SCHEMA,
    auth0_role,
    eventually,
    in_org,
    make_token,
    patch_body,
    scim_client,
    user_body,
)
from tests.support.stack import Browser, Stack

CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
PAGE = "/o/acme/settings/directory"


def signed_in(stack: Stack, email: str) -> Browser:
    browser = stack.browser()
    assert browser.login(email).status_code == 200
    assert browser.follow(browser.get("/o/acme/login?silent=true")).status_code == 200
    return browser


def csrf(browser: Browser) -> str:
    found = CSRF.search(browser.get("/o/acme/").text)
    assert found
    return found[1]


def membership(stack: Stack, email: str, slug: str = "acme") -> Membership | None:
    async def read(session: AsyncSession, org: Organization) -> Membership | None:
        return (
            await session.execute(
                select(Membership)
                .join(User, User.id == Membership.user_id)
                .where(Membership.organization_id == org.id, User.email == email)
            )
        ).scalar_one_or_none()

    return in_org(stack.settings, slug, read)


def role_of(stack: Stack, email: str) -> str | None:
    found = membership(stack, email)
    return found.role if found else None


def events(stack: Stack, action: str, slug: str = "acme") -> list[AuditEvent]:
    async def read(session: AsyncSession, org: Organization) -> list[AuditEvent]:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.organization_id == org.id, AuditEvent.action == action)
            .order_by(AuditEvent.created_at)
        )
        return list(rows)

    return in_org(stack.settings, slug, read)


def assert_scim_error(response: httpx.Response, status: int, scim_type: str | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type, body
    assert body["detail"]


# ---- tokens and the settings page ----------------------------------------------------------

ROLES = {
    "alice@acme.example": 200,  # owner
    "adam@acme.example": 200,  # admin
    "bob@acme.example": 403,  # member
    "vera@acme.example": 403,  # viewer
}


@pytest.mark.parametrize(("email", "expected"), ROLES.items())
def test_only_admins_manage_tokens(stack: Stack, email: str, expected: int) -> None:
    browser = signed_in(stack, email)
    assert browser.get(PAGE).status_code == expected
    assert (f'href="{PAGE}"' in browser.get("/o/acme/").text) is (expected == 200)
    created = browser.client.post(
        stack.app_url + PAGE + "/tokens", data={"name": "Okta", "_csrf_token": csrf(browser)}
    )
    assert created.status_code == expected
    if expected != 200:
        assert events(stack, "scim.token_created") == []
        return
    secret = re.search(r'data-testid="token-secret">([^<]+)<', created.text)
    assert secret, created.text
    assert f"{stack.app_url}/scim/v2/" in created.text
    # Shown once: the page does not show it again.
    assert secret[1] not in browser.get(PAGE).text
    with scim_client(stack, secret[1]) as client:
        assert client.get("/Users").status_code == 200
    (event,) = events(stack, "scim.token_created")
    assert event.details == {"name": "Okta"}


def test_tokens_are_rotated_and_revoked(stack: Stack) -> None:
    browser = signed_in(stack, "alice@acme.example")
    blank = browser.client.post(
        stack.app_url + PAGE + "/tokens", data={"name": "  ", "_csrf_token": csrf(browser)}
    )
    assert blank.status_code == 422
    assert "Name the token" in blank.text
    created = browser.client.post(
        stack.app_url + PAGE + "/tokens", data={"name": "Entra", "_csrf_token": csrf(browser)}
    )
    first = re.search(r'data-testid="token-secret">([^<]+)<', created.text)
    assert first
    token_id = re.search(r"/settings/directory/tokens/([0-9a-f-]+)/rotate", created.text)
    assert token_id
    with scim_client(stack, first[1]) as client:
        assert client.get("/ServiceProviderConfig").status_code == 200
    page = browser.get(PAGE).text
    assert 'data-testid="token-last-used">never' not in page
    rotated = browser.client.post(
        stack.app_url + f"{PAGE}/tokens/{token_id[1]}/rotate", data={"_csrf_token": csrf(browser)}
    )
    assert rotated.status_code == 200
    second = re.search(r'data-testid="token-secret">([^<]+)<', rotated.text)
    assert second
    assert second[1] != first[1]
    with scim_client(stack, first[1]) as old, scim_client(stack, second[1]) as new:
        assert_scim_error(old.get("/Users"), 401, None)
        assert new.get("/Users").status_code == 200
    revoked = browser.client.post(
        stack.app_url + f"{PAGE}/tokens/{token_id[1]}/revoke", data={"_csrf_token": csrf(browser)}
    )
    assert revoked.status_code == 303
    with scim_client(stack, second[1]) as new:
        assert_scim_error(new.get("/Users"), 401, None)
    assert [len(events(stack, f"scim.token_{a}")) for a in ("created", "rotated", "revoked")] == [
        1,
        1,
        1,
    ]


# ---- Okta ------------------------------------------------------------------------------------


def test_okta_provisioning_sequence(stack: Stack) -> None:
    """What Okta sends (its SCIM 2.0 provisioning guide): look the user up by userName, create,
    read, update with PUT, deactivate with a path-less `replace`, push a group, change its
    members and name, delete it."""
    token = make_token(stack, name="Okta")
    with scim_client(stack, token) as okta:
        found = okta.get("/Users", params={"filter": 'userName eq "nina@acme.example"'})
        assert found.status_code == 200
        assert found.json()["totalResults"] == 0
        assert found.headers["content-type"].startswith(SCIM_JSON)
        created = okta.post("/Users", json=user_body("nina@acme.example", "00u-nina"))
        assert created.status_code == 201, created.text
        nina = created.json()
        assert nina["userName"] == "nina@acme.example"
        assert nina["active"] is True
        assert created.headers["location"].endswith(f"/scim/v2/Users/{nina['id']}")
        assert role_of(stack, "nina@acme.example") == "member"  # the default role
        again = okta.get("/Users", params={"filter": 'userName eq "NINA@acme.example"'})
        assert [r["id"] for r in again.json()["Resources"]] == [nina["id"]]
        assert okta.get(f"/Users/{nina['id']}").json()["name"]["familyName"] == "Directory"

        replaced = okta.put(
            f"/Users/{nina['id']}",
            json={**user_body("nina@acme.example", "00u-nina"), "displayName": "Nina Renamed"},
        )
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["displayName"] == "Nina Renamed"

        group = okta.post(
            "/Groups",
            json={"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "members": []},
        )
        assert group.status_code == 201, group.text
        group_id = group.json()["id"]
        added = okta.patch(
            f"/Groups/{group_id}",
            json=patch_body(
                {"op": "add", "path": "members", "value": [{"value": nina["id"], "display": "n"}]}
            ),
        )
        assert added.status_code == 200, added.text
        assert [m["value"] for m in added.json()["members"]] == [nina["id"]]
        renamed = okta.patch(
            f"/Groups/{group_id}",
            json=patch_body(
                {"op": "replace", "value": {"id": group_id, "displayName": "Engineers"}}
            ),
        )
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["displayName"] == "Engineers"
        removed = okta.patch(
            f"/Groups/{group_id}",
            json=patch_body({"op": "remove", "path": f'members[value eq "{nina["id"]}"]'}),
        )
        assert removed.status_code == 200, removed.text
        assert "members" not in removed.json()

        deactivated = okta.patch(
            f"/Users/{nina['id']}", json=patch_body({"op": "replace", "value": {"active": False}})
        )
        assert deactivated.status_code == 200, deactivated.text
        assert deactivated.json()["active"] is False
        assert membership(stack, "nina@acme.example") is None
        reactivated = okta.patch(
            f"/Users/{nina['id']}", json=patch_body({"op": "replace", "value": {"active": True}})
        )
        assert reactivated.json()["active"] is True
        assert role_of(stack, "nina@acme.example") == "member"
        assert okta.delete(f"/Groups/{group_id}").status_code == 204
        assert_scim_error(okta.get(f"/Groups/{group_id}"), 404, None)

    (provisioned,) = events(stack, "directory.user_provisioned")
    assert provisioned.actor_id is None
    assert provisioned.details["actor"] == "directory sync (Okta)"
    assert len(events(stack, "directory.user_deactivated")) == 1
    assert len(events(stack, "member.removed")) == 1
    assert len(events(stack, "directory.group_deleted")) == 1


# ---- Microsoft Entra ID ----------------------------------------------------------------------


def test_entra_provisioning_sequence(stack: Stack) -> None:
    """What Entra ID sends (its SCIM guide): filter on userName and externalId, create with the
    enterprise extension, PATCH with capitalised ops and `path`s (including a filtered email
    path), `"False"` as a string for active, group members added and removed with values,
    a value-less `Remove` by path, and DELETE."""
    token = make_token(stack, name="Entra")
    with scim_client(stack, token) as entra:
        assert (
            entra.get("/Users", params={"filter": 'userName eq "omar@acme.example"'}).json()[
                "totalResults"
            ]
            == 0
        )
        body = user_body("omar@acme.example", "0a21f0f2-8d2a-4f8e-8a4c-omar")
        body["schemas"] = [USER_SCHEMA, ENTERPRISE]
        body[ENTERPRISE] = {"department": "Sales", "employeeNumber": "701984"}
        created = entra.post("/Users", json=body)
        assert created.status_code == 201, created.text
        omar = created.json()
        assert omar[ENTERPRISE]["department"] == "Sales"
        by_external = entra.get(
            "/Users", params={"filter": 'externalId eq "0a21f0f2-8d2a-4f8e-8a4c-omar"'}
        )
        assert [r["id"] for r in by_external.json()["Resources"]] == [omar["id"]]
        by_email = entra.get(
            "/Users", params={"filter": 'emails[type eq "work"].value eq "omar@acme.example"'}
        )
        assert by_email.status_code in (200, 400)
        plain_email = entra.get("/Users", params={"filter": 'emails.value eq "omar@acme.example"'})
        assert [r["id"] for r in plain_email.json()["Resources"]] == [omar["id"]]

        patched = entra.patch(
            f"/Users/{omar['id']}",
            json=patch_body(
                {"op": "Replace", "path": "displayName", "value": "Omar Updated"},
                {"op": "Replace", "path": "name.givenName", "value": "Omar"},
                {
                    "op": "Replace",
                    "path": 'emails[type eq "work"].value',
                    "value": "omar@acme.example",
                },
                {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Marketing"},
                {"op": "Remove", "path": "title"},
            ),
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["displayName"] == "Omar Updated"
        assert patched.json()[ENTERPRISE]["department"] == "Marketing"

        group = entra.post(
            "/Groups",
            json={"schemas": [GROUP_SCHEMA], "displayName": "Sales", "externalId": "grp-sales"},
        )
        assert group.status_code == 201, group.text
        group_id = group.json()["id"]
        assert (
            entra.get(
                "/Groups",
                params={"filter": 'displayName eq "Sales"', "excludedAttributes": "members"},
            ).json()["totalResults"]
            == 1
        )
        add = entra.patch(
            f"/Groups/{group_id}",
            json=patch_body({"op": "Add", "path": "members", "value": [{"value": omar["id"]}]}),
        )
        assert add.status_code == 200, add.text
        remove = entra.patch(
            f"/Groups/{group_id}",
            json=patch_body({"op": "Remove", "path": "members", "value": [{"value": omar["id"]}]}),
        )
        assert remove.status_code == 200, remove.text
        assert "members" not in remove.json()

        off = entra.patch(
            f"/Users/{omar['id']}",
            json=patch_body({"op": "Replace", "path": "active", "value": "False"}),
        )
        assert off.status_code == 200, off.text
        assert off.json()["active"] is False
        assert membership(stack, "omar@acme.example") is None
        assert entra.delete(f"/Users/{omar['id']}").status_code == 204
        assert_scim_error(entra.get(f"/Users/{omar['id']}"), 404, None)
    assert len(events(stack, "directory.user_deleted")) == 1


# ---- deprovisioning ends access ------------------------------------------------------------


def test_deactivation_ends_access_sessions_and_auth0_membership(stack: Stack) -> None:
    """bob is signed in. The directory takes him over (his verified acme.example address) and
    deactivates him: his next request is refused, his sessions are ended, and the outbox has
    a job to remove him at Auth0. Reactivation gives him back the default role."""
    bob = signed_in(stack, "bob@acme.example")
    assert bob.get("/o/acme/").status_code == 200
    token = make_token(stack)
    with scim_client(stack, token) as okta:
        linked = okta.post("/Users", json=user_body("bob@acme.example", "00u-bob"))
        assert linked.status_code == 201, linked.text
        bob_id = linked.json()["id"]
        found = membership(stack, "bob@acme.example")
        assert found is not None
        assert found.directory_managed
        assert found.role == "member"
        # The same person, not a copy: one user with bob's address.
        assert (
            in_org(
                stack.settings,
                "acme",
                lambda s, o: s.scalar(
                    select(DirectoryUser.user_id).where(DirectoryUser.id == bob_id)
                ),
            )
            == found.user_id
        )

        admin = signed_in(stack, "adam@acme.example")
        members = admin.get("/o/acme/members").text
        assert 'data-testid="directory-badge"' in members
        off = okta.patch(
            f"/Users/{bob_id}", json=patch_body({"op": "replace", "value": {"active": False}})
        )
        assert off.status_code == 200, off.text
        assert bob.get("/o/acme/").status_code in (303, 404)
        assert membership(stack, "bob@acme.example") is None
        assert len(events(stack, "session.access_ended")) == 1
        jobs = in_org(
            stack.settings,
            "acme",
            lambda s, o: s.scalar(
                select(OutboxJob.id).where(
                    OutboxJob.organization_id == o.id,
                    OutboxJob.target_type == "member",
                    OutboxJob.target_id == found.user_id,
                )
            ),
        )
        assert jobs is not None
        assert "bob@acme.example" not in admin.get("/o/acme/members").text
        bob_sub = "samlp|acme-saml|bob@acme.example"
        eventually(lambda: auth0_role(stack, bob_sub) is None)  # gone at Auth0 too
        on = okta.patch(
            f"/Users/{bob_id}", json=patch_body({"op": "replace", "value": {"active": True}})
        )
        assert on.status_code == 200
        assert role_of(stack, "bob@acme.example") == "member"
        eventually(lambda: auth0_role(stack, bob_sub) == "member")


def test_unverified_email_links_to_nobody(stack: Stack) -> None:
    """A directory claiming gina@globex.example (a domain acme has not verified) gets a person
    of its own, never globex's gina."""
    token = make_token(stack)
    with scim_client(stack, token) as okta:
        created = okta.post("/Users", json=user_body("gina@globex.example"))
        assert created.status_code == 201, created.text
    found = membership(stack, "gina@globex.example")
    assert found is not None

    async def sub_of(session: AsyncSession, _: Organization) -> str:
        user = await session.get_one(User, found.user_id)
        return user.sub

    assert in_org(stack.settings, "acme", sub_of).startswith("scim|")
    assert membership(stack, "gina@globex.example", slug="globex") is not None


# ---- groups -> roles, the last owner ---------------------------------------------------------


def _map(stack: Stack, browser: Browser, group_id: str, role: str) -> httpx.Response:
    return browser.client.post(
        stack.app_url + f"{PAGE}/groups/{group_id}/role",
        data={"role": role, "_csrf_token": csrf(browser)},
    )


def test_group_roles_highest_wins_and_the_last_owner_holds(stack: Stack) -> None:
    token = make_token(stack)
    owner = signed_in(stack, "alice@acme.example")
    with scim_client(stack, token) as okta:
        bob = okta.post("/Users", json=user_body("bob@acme.example")).json()["id"]
        alice = okta.post("/Users", json=user_body("alice@acme.example")).json()["id"]
        admins = okta.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "Admins"})
        viewers = okta.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "Viewers"})
        owners = okta.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "Owners"})
        admins_id, viewers_id, owners_id = (g.json()["id"] for g in (admins, viewers, owners))
        assert _map(stack, owner, admins_id, "admin").status_code == 303
        assert _map(stack, owner, viewers_id, "viewer").status_code == 303
        assert _map(stack, owner, owners_id, "owner").status_code == 303

        def members(group_id: str, op: str, user_id: str) -> httpx.Response:
            return okta.patch(
                f"/Groups/{group_id}",
                json=patch_body({"op": op, "path": "members", "value": [{"value": user_id}]}),
            )

        assert members(viewers_id, "add", bob).status_code == 200
        assert role_of(stack, "bob@acme.example") == "viewer"
        assert members(admins_id, "add", bob).status_code == 200
        assert role_of(stack, "bob@acme.example") == "admin"  # the highest wins
        eventually(lambda: auth0_role(stack, "samlp|acme-saml|bob@acme.example") == "admin")
        # The role is the directory's: an admin cannot hand-edit it, and is told why.
        adam = signed_in(stack, "adam@acme.example")
        listing = adam.get("/o/acme/members").text
        assert "From the directory group “Admins”" in listing
        bob_membership = membership(stack, "bob@acme.example")
        assert bob_membership is not None
        refused = adam.client.post(
            stack.app_url + f"/o/acme/members/{bob_membership.id}/role",
            data={"role": "member", "_csrf_token": csrf(adam)},
        )
        assert refused.status_code == 403
        assert "comes from the directory group" in refused.text
        refused = adam.client.post(
            stack.app_url + f"/o/acme/members/{bob_membership.id}/remove",
            data={"_csrf_token": csrf(adam)},
        )
        assert refused.status_code == 403
        assert "provisioned by your directory" in refused.text
        # An admin cannot map a group to owner.
        assert _map(stack, adam, viewers_id, "owner").status_code == 403

        assert members(admins_id, "remove", bob).status_code == 200
        assert role_of(stack, "bob@acme.example") == "viewer"  # the next mapped role
        assert members(viewers_id, "remove", bob).status_code == 200
        assert role_of(stack, "bob@acme.example") == "member"  # the default

        # alice is acme's only owner: the directory cannot take that away.
        assert members(owners_id, "add", alice).status_code == 200
        assert role_of(stack, "alice@acme.example") == "owner"
        refusal = members(owners_id, "remove", alice)
        assert_scim_error(refusal, 409, None)
        assert "last owner" in refusal.json()["detail"]
        assert role_of(stack, "alice@acme.example") == "owner"
        assert_scim_error(
            okta.patch(
                f"/Users/{alice}", json=patch_body({"op": "replace", "value": {"active": False}})
            ),
            409,
            None,
        )
        assert_scim_error(okta.delete(f"/Users/{alice}"), 409, None)
        assert role_of(stack, "alice@acme.example") == "owner"
    refusals = events(stack, "directory.change_refused")
    assert len(refusals) == 3
    assert {e.details["actor"] for e in refusals} == {"directory sync (Okta)"}
    page = owner.get(PAGE).text
    assert 'data-testid="directory-errors"' in page
    assert "last owner" in page


def test_two_owners_deactivated_at_once_leave_one(stack: Stack) -> None:
    """Two racing deactivations of acme's two owners: one succeeds, one is refused (409)."""
    token = make_token(stack)
    with scim_client(stack, token) as okta:
        alice = okta.post("/Users", json=user_body("alice@acme.example")).json()["id"]
        adam = okta.post("/Users", json=user_body("adam@acme.example")).json()["id"]
        owners = okta.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "Owners"})

    async def map_owner(session: AsyncSession, org: Organization) -> None:
        from saas.scim.tokens import DirectorySettingsService
        from saas.tenancy.caller import Caller
        from saas.tenancy.permissions import Role

        await DirectorySettingsService(session, Caller.system(org)).map_group(
            __import__("uuid").UUID(owners.json()["id"]), Role.OWNER
        )

    in_org(stack.settings, "acme", map_owner)
    with scim_client(stack, token) as okta:
        okta.patch(
            f"/Groups/{owners.json()['id']}",
            json=patch_body(
                {"op": "add", "path": "members", "value": [{"value": adam}, {"value": alice}]}
            ),
        )
    assert role_of(stack, "adam@acme.example") == "owner"
    barrier = threading.Barrier(2)
    answers: list[int] = []

    def deactivate(user_id: str) -> None:
        with scim_client(stack, token) as client:
            barrier.wait()
            answer = client.patch(
                f"/Users/{user_id}",
                json=patch_body({"op": "replace", "path": "active", "value": False}),
            )
            answers.append(answer.status_code)

    threads = [threading.Thread(target=deactivate, args=(u,)) for u in (alice, adam)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200, 409]
    owners_left = [e for e in ("alice@acme.example", "adam@acme.example") if role_of(stack, e)]
    assert len(owners_left) == 1


# ---- refusals ----------------------------------------------------------------------------


def test_every_refusal_is_a_scim_error(stack: Stack) -> None:
    token = make_token(stack)
    anonymous = httpx.get(stack.app_url + "/scim/v2/Users")
    assert_scim_error(anonymous, 401, None)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    with scim_client(stack, "scim_not-a-token") as wrong:
        assert_scim_error(wrong.get("/Users"), 401, None)
    with scim_client(stack, token) as okta:
        assert_scim_error(
            okta.get("/Users", params={"filter": "userName eq"}), 400, "invalidFilter"
        )
        assert_scim_error(
            okta.get("/Users", params={"filter": 'title co "x"'}), 400, "invalidFilter"
        )
        assert_scim_error(okta.get("/Users", params={"count": "ten"}), 400, "invalidValue")
        assert_scim_error(okta.post("/Users", content=b"{not json"), 400, "invalidSyntax")
        assert_scim_error(okta.post("/Users", json={"schemas": [USER_SCHEMA]}), 400, "invalidValue")
        assert okta.post("/Users", json=user_body("pia@acme.example", "x1")).status_code == 201
        assert_scim_error(
            okta.post("/Users", json=user_body("PIA@acme.example")), 409, "uniqueness"
        )
        assert_scim_error(
            okta.post("/Users", json=user_body("pia2@acme.example", "x1")), 409, "uniqueness"
        )
        assert_scim_error(okta.get("/Users/not-an-id"), 404, None)
        assert_scim_error(okta.get("/Users/0192d3a0-0000-7000-8000-000000000001"), 404, None)
        assert_scim_error(okta.get("/Nothing"), 404, None)
        assert_scim_error(
            okta.patch("/Users/0192d3a0-0000-7000-8000-000000000001", json=patch_body()),
            404,
            None,
        )
        pia = okta.get("/Users", params={"filter": 'userName eq "pia@acme.example"'}).json()
        pia_id = pia["Resources"][0]["id"]
        assert_scim_error(
            okta.patch(f"/Users/{pia_id}", json=patch_body({"op": "jump", "path": "title"})),
            400,
            "invalidValue",
        )
        assert_scim_error(
            okta.patch(f"/Users/{pia_id}", json={"schemas": [], "Operations": []}),
            400,
            "invalidValue",
        )
        big = okta.get("/Users", params={"count": "100000", "startIndex": "-5"}).json()
        assert big["startIndex"] == 1
        assert big["itemsPerPage"] <= 200
        none = okta.get("/Users", params={"count": "0"}).json()
        assert none["Resources"] == []
        assert none["totalResults"] >= 1
        assert okta.get("/ServiceProviderConfig").json()["patch"]["supported"] is True
        assert {r["name"] for r in okta.get("/ResourceTypes").json()["Resources"]} == {
            "User",
            "Group",
        }
        assert len(okta.get("/Schemas").json()["Resources"]) == 3

    async def recorded(session: AsyncSession, org: Organization) -> int:
        rows = await session.scalars(
            select(DirectorySyncError).where(DirectorySyncError.organization_id == org.id)
        )
        return len(list(rows))

    assert in_org(stack.settings, "acme", recorded) >= 10


# ---- one organization's token, another's resources ----------------------------------------


def test_a_token_reaches_only_its_own_organization(stack: Stack) -> None:
    acme, globex = make_token(stack, "acme"), make_token(stack, "globex", name="Globex IdP")
    with scim_client(stack, acme) as a, scim_client(stack, globex) as g:
        user = a.post("/Users", json=user_body("quinn@acme.example", "q1")).json()
        group = a.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "A"}).json()
        theirs = g.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "G"}).json()
        for path in (f"/Users/{user['id']}", f"/Groups/{group['id']}"):
            assert_scim_error(g.get(path), 404, None)
            assert_scim_error(g.delete(path), 404, None)
            assert_scim_error(
                g.patch(
                    path, json=patch_body({"op": "replace", "path": "displayName", "value": "x"})
                ),
                404,
                None,
            )
            assert_scim_error(g.put(path, json=user_body("quinn@acme.example")), 404, None)
        assert (
            g.get("/Users", params={"filter": 'userName eq "quinn@acme.example"'}).json()[
                "totalResults"
            ]
            == 0
        )
        assert g.get("/Users", params={"filter": 'externalId eq "q1"'}).json()["totalResults"] == 0
        assert g.get("/Groups").json()["totalResults"] == 1
        # A member id of acme's is no user in globex's directory.
        assert_scim_error(
            g.patch(
                f"/Groups/{theirs['id']}",
                json=patch_body({"op": "add", "path": "members", "value": [{"value": user["id"]}]}),
            ),
            400,
            "invalidValue",
        )
        # The same userName is free in globex's directory: each organization has its own.
        assert g.post("/Users", json=user_body("quinn@acme.example", "q1")).status_code == 201
        assert a.get(f"/Users/{user['id']}").status_code == 200
    assert membership(stack, "quinn@acme.example", slug="acme") is not None


def test_first_sign_in_claims_the_directory_entry_and_the_deactivated_stay_out(
    stack: Stack,
) -> None:
    """nora has never signed in: the directory's entry for her has an identity of its own,
    which her first sign-in (through acme's SAML connection, a verified acme.example address)
    takes over, membership and role included. Once deactivated, signing in again does not let
    her back in, though acme admits new people just in time."""
    token = make_token(stack)
    with scim_client(stack, token) as okta:
        nora = okta.post("/Users", json=user_body("nora@acme.example", "00u-nora")).json()["id"]
        browser = stack.browser()
        assert browser.login("nora@acme.example").status_code == 200
        found = membership(stack, "nora@acme.example")
        assert found is not None
        assert found.directory_managed

        async def people(session: AsyncSession, _: Organization) -> list[str]:
            rows = await session.scalars(select(User.sub).where(User.email == "nora@acme.example"))
            return list(rows)

        assert in_org(stack.settings, "acme", people) == ["samlp|acme-saml|nora@acme.example"]
        # Auth0 knows her now: the outbox adds her to acme there with the directory's role.
        eventually(lambda: auth0_role(stack, "samlp|acme-saml|nora@acme.example") == "member")
        assert okta.get(f"/Users/{nora}").status_code == 200
        off = okta.patch(
            f"/Users/{nora}", json=patch_body({"op": "replace", "value": {"active": False}})
        )
        assert off.status_code == 200
        again = stack.browser()
        assert again.login("nora@acme.example").status_code == 403
        assert membership(stack, "nora@acme.example") is None


def test_one_user_name_wins_two_racing_creations(stack: Stack) -> None:
    token = make_token(stack)
    barrier = threading.Barrier(2)
    answers: list[int] = []

    def create(external_id: str) -> None:
        with scim_client(stack, token) as client:
            barrier.wait()
            body = user_body("race@acme.example", external_id)
            answers.append(client.post("/Users", json=body).status_code)

    threads = [threading.Thread(target=create, args=(e,)) for e in ("r1", "r2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201, 409]

    async def entries(session: AsyncSession, org: Organization) -> int:
        rows = await session.scalars(
            select(DirectoryUser.id).where(
                DirectoryUser.organization_id == org.id,
                DirectoryUser.user_name_key == "race@acme.example",
            )
        )
        return len(list(rows))

    assert in_org(stack.settings, "acme", entries) == 1


@pytest.mark.stack(scim_rate_limit_per_minute=3)
def test_each_token_has_its_own_rate_limit(stack: Stack) -> None:
    first, second = make_token(stack, name="One"), make_token(stack, name="Two")
    with scim_client(stack, first) as one, scim_client(stack, second) as two:
        assert [one.get("/Users").status_code for _ in range(3)] == [200, 200, 200]
        limited = one.get("/Users")
        assert_scim_error(limited, 429, None)
        assert int(limited.headers["retry-after"]) >= 1
        assert two.get("/Users").status_code == 200


def test_a_replacement_without_active_keeps_a_deactivated_person_out(stack: Stack) -> None:
    token = make_token(stack)
    with scim_client(stack, token) as okta:
        body = user_body("ria@acme.example", "00u-ria")
        ria = okta.post("/Users", json={**body, "active": False}).json()
        assert ria["active"] is False
        assert membership(stack, "ria@acme.example") is None
        replaced = okta.put(
            f"/Users/{ria['id']}",
            json={k: v for k, v in body.items() if k != "active"} | {"displayName": "Ria R"},
        )
        assert replaced.status_code == 200, replaced.text
        # Unassigned, as the PUT left it; the person stays deactivated all the same.
        assert "active" not in replaced.json()
        assert membership(stack, "ria@acme.example") is None


# ---- review findings: placeholders, unverified emails, token authority, bounds ------------


def _directory_people(stack: Stack, email: str) -> list[tuple[str, str, str]]:
    """(organization slug, user sub, user name) of every directory entry with this email."""

    async def read(session: AsyncSession, _: Organization) -> list[tuple[str, str, str]]:
        rows = await session.execute(
            select(Organization.slug, User.sub, User.name)
            .join(DirectoryUser, DirectoryUser.organization_id == Organization.id)
            .join(User, User.id == DirectoryUser.user_id)
            .where(DirectoryUser.email == email)
            .order_by(Organization.slug)
        )
        return [tuple(r) for r in rows.tuples()]  # type: ignore[misc]

    return in_org(stack.settings, "acme", read)


def test_another_organizations_placeholder_is_never_linked_renamed_or_deleted(
    stack: Stack,
) -> None:
    """globex's directory provisions an acme.example address first (a placeholder of its own);
    acme's directory then provisions the real person. acme's entry gets its own user, and
    nothing globex's directory does afterwards reaches it."""
    globex, acme = make_token(stack, "globex", "Evil"), make_token(stack, "acme")
    with scim_client(stack, globex) as evil:
        created = evil.post("/Users", json=user_body("newhire@acme.example"))
        assert created.status_code == 201, created.text
        evil_id = created.json()["id"]
    with scim_client(stack, acme) as okta:
        assert okta.post("/Users", json=user_body("newhire@acme.example")).status_code == 201
    people = _directory_people(stack, "newhire@acme.example")
    assert [p[0] for p in people] == ["acme", "globex"]
    assert people[0][1] != people[1][1]
    assert people[0][1].startswith("scim|")
    acme_membership = membership(stack, "newhire@acme.example")
    assert acme_membership is not None
    with scim_client(stack, globex) as evil:
        renamed = evil.patch(
            f"/Users/{evil_id}",
            json=patch_body({"op": "replace", "value": {"displayName": "Renamed By Globex"}}),
        )
        assert renamed.status_code == 200, renamed.text
        assert evil.delete(f"/Users/{evil_id}").status_code == 204
    people = _directory_people(stack, "newhire@acme.example")
    assert [(p[0], p[2]) for p in people] == [("acme", "Newhire Directory")]
    after = membership(stack, "newhire@acme.example")
    assert after is not None
    assert after.id == acme_membership.id


def test_a_user_outside_the_organization_is_not_linked_by_email(stack: Stack) -> None:
    """Someone signed in once asserting victim@acme.example (their own IdP): provisioning that
    address gives them nothing; the directory's entry has a placeholder, which the person's
    own verified sign-in claims."""

    async def attacker(session: AsyncSession, _: Organization) -> None:
        session.add(
            User(
                sub="oidc|evil-idp|victim",
                email="victim@acme.example",
                name="Not The Victim",
                last_login_at=datetime.datetime.now(datetime.UTC),
            )
        )

    in_org(stack.settings, "acme", attacker)
    token = make_token(stack)
    with scim_client(stack, token) as okta:
        created = okta.post("/Users", json=user_body("victim@acme.example"))
        assert created.status_code == 201, created.text

    async def member_subs(session: AsyncSession, org: Organization) -> list[str]:
        rows = await session.scalars(
            select(User.sub)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.organization_id == org.id, User.email == "victim@acme.example")
        )
        return list(rows)

    (sub,) = in_org(stack.settings, "acme", member_subs)
    assert sub.startswith("scim|")
    # The real person, signing in through acme's connection with the address verified.
    browser = stack.browser()
    assert browser.login("victim@acme.example").status_code == 200
    assert in_org(stack.settings, "acme", member_subs) == ["samlp|acme-saml|victim@acme.example"]


def _make_owner(stack: Stack, email: str) -> None:
    async def work(session: AsyncSession, org: Organization) -> None:
        user = (await session.execute(select(User).where(User.email == email))).scalar_one()
        found = (
            await session.execute(
                select(Membership).where(
                    Membership.organization_id == org.id, Membership.user_id == user.id
                )
            )
        ).scalar_one()
        found.role = "owner"

    in_org(stack.settings, "acme", work)


def _set_role(stack: Stack, email: str, role: str) -> None:
    async def work(session: AsyncSession, org: Organization) -> None:
        user = (await session.execute(select(User).where(User.email == email))).scalar_one()
        found = (
            await session.execute(
                select(Membership).where(
                    Membership.organization_id == org.id, Membership.user_id == user.id
                )
            )
        ).scalar_one()
        found.role = role

    in_org(stack.settings, "acme", work)


def _token_of(stack: Stack, browser: Browser, name: str = "Admin's") -> str:
    page = browser.client.post(
        stack.app_url + f"{PAGE}/tokens", data={"name": name, "_csrf_token": csrf(browser)}
    )
    assert page.status_code == 200, page.text
    found = re.search(r'data-testid="token-secret">([^<]+)<', page.text)
    assert found
    return found[1]


def test_an_admin_cannot_demote_an_owner_by_mapping_a_group(stack: Stack) -> None:
    _make_owner(stack, "bob@acme.example")  # a second owner: the last-owner rule is not it
    token = make_token(stack)
    with scim_client(stack, token) as okta:
        bob = okta.post("/Users", json=user_body("bob@acme.example")).json()["id"]
        vera = okta.post("/Users", json=user_body("vera@acme.example")).json()["id"]
        everyone = okta.post(
            "/Groups",
            json={
                "schemas": [GROUP_SCHEMA],
                "displayName": "Everyone",
                "members": [{"value": bob}, {"value": vera}],
            },
        ).json()["id"]
    adam = signed_in(stack, "adam@acme.example")
    refused = _map(stack, adam, everyone, "viewer")
    assert refused.status_code == 403
    assert "would change the role of an owner" in refused.text
    assert role_of(stack, "bob@acme.example") == "owner"
    assert events(stack, "directory.group_mapped") == []
    # An owner may.
    alice = signed_in(stack, "alice@acme.example")
    assert _map(stack, alice, everyone, "viewer").status_code == 303
    assert role_of(stack, "bob@acme.example") == "viewer"


def test_an_admins_token_cannot_remove_demote_or_make_owners(stack: Stack) -> None:
    _make_owner(stack, "bob@acme.example")
    owners_token = make_token(stack, name="Setup")
    with scim_client(stack, owners_token) as setup:
        bob = setup.post("/Users", json=user_body("bob@acme.example")).json()["id"]
        adam = setup.post("/Users", json=user_body("adam@acme.example")).json()["id"]
        owners = setup.post(
            "/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "Owners"}
        ).json()["id"]
    alice = signed_in(stack, "alice@acme.example")
    assert _map(stack, alice, owners, "owner").status_code == 303
    admin_token = _token_of(stack, signed_in(stack, "adam@acme.example"))
    with scim_client(stack, admin_token) as okta:
        off = okta.patch(
            f"/Users/{bob}", json=patch_body({"op": "replace", "value": {"active": False}})
        )
        assert_scim_error(off, 403, None)
        assert "admin" in off.json()["detail"]
        assert_scim_error(okta.delete(f"/Users/{bob}"), 403, None)
        joined = okta.patch(
            f"/Groups/{owners}",
            json=patch_body({"op": "add", "path": "members", "value": [{"value": adam}]}),
        )
        assert_scim_error(joined, 403, None)
        # What an admin may do, it does.
        assert okta.put(f"/Users/{adam}", json=user_body("adam@acme.example")).status_code == 200
    assert role_of(stack, "bob@acme.example") == "owner"
    assert role_of(stack, "adam@acme.example") == "admin"
    refusals = events(stack, "directory.change_refused")
    assert [e.details["reason"] for e in refusals] == ["not_allowed"] * 3
    # The creator lost the role that let them manage the organization: the token changes
    # nothing until someone who does rotates it (reads still work).
    _set_role(stack, "adam@acme.example", "member")
    with scim_client(stack, admin_token) as okta:
        assert okta.get(f"/Users/{adam}").status_code == 200
        stale = okta.put(f"/Users/{adam}", json=user_body("adam@acme.example"))
        assert_scim_error(stale, 403, None)
        assert "no longer manages" in stale.json()["detail"]
    # An owner rotates it: from now on it acts as that owner.
    page = alice.get(PAGE).text
    token_ids = re.findall(r"/settings/directory/tokens/([0-9a-f-]+)/rotate", page)
    secrets = []
    for token_id in token_ids:
        rotated = alice.client.post(
            stack.app_url + f"{PAGE}/tokens/{token_id}/rotate", data={"_csrf_token": csrf(alice)}
        )
        found = re.search(r'data-testid="token-secret">([^<]+)<', rotated.text)
        assert found
        secrets.append(found[1])
    assert len(secrets) == 2
    for secret in secrets:
        with scim_client(stack, secret) as okta:
            off = okta.patch(
                f"/Users/{bob}", json=patch_body({"op": "replace", "value": {"active": False}})
            )
            assert off.status_code == 200, off.text
    assert membership(stack, "bob@acme.example") is None


def test_requests_are_bounded(stack: Stack) -> None:
    token = make_token(stack)
    with scim_client(stack, token) as okta:
        group = okta.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "G"})
        group_id = group.json()["id"]
        ops = [{"op": "remove", "path": f'members[value eq "{uuid.uuid4()}"]'} for _ in range(1001)]
        many = okta.patch(f"/Groups/{group_id}", json=patch_body(*ops))
        assert_scim_error(many, 400, "tooMany")
        members = [{"value": str(uuid.uuid4())} for _ in range(1001)]
        big = okta.post(
            "/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "Big", "members": members}
        )
        assert_scim_error(big, 400, "tooMany")
        adding = okta.patch(
            f"/Groups/{group_id}",
            json=patch_body({"op": "add", "path": "members", "value": members}),
        )
        assert_scim_error(adding, 400, "tooMany")
        # A path-less value may name the attribute by its full URN, or both ways at once.
        for value in (
            {f"{GROUP_SCHEMA}:members": members},
            {"members": members[:600], f"{GROUP_SCHEMA}:members": members[600:]},
            {GROUP_SCHEMA: {"members": members}},
        ):
            keyed = okta.patch(
                f"/Groups/{group_id}", json=patch_body({"op": "add", "value": value})
            )
            assert_scim_error(keyed, 400, "tooMany")
        huge = [{"value": str(uuid.uuid4()), "display": "x" * 200} for _ in range(5000)]
        too_large = okta.put(
            f"/Groups/{group_id}",
            json={"schemas": [GROUP_SCHEMA], "displayName": "G", "members": huge},
        )
        assert_scim_error(too_large, 413, None)


def test_paging_bounds_are_clamped(stack: Stack) -> None:
    token = make_token(stack)
    with scim_client(stack, token) as okta:
        far = okta.get("/Users", params={"startIndex": str(10**25)})
        assert far.status_code == 200, far.text
        assert far.json().get("Resources", []) == []
        assert okta.get("/Users", params={"count": "-5"}).status_code == 200
        assert okta.get("/Groups", params={"startIndex": str(-(10**25))}).status_code == 200


def test_a_tokens_last_use_is_kept_when_the_request_is_refused(stack: Stack) -> None:
    """Written in a transaction of its own, not the request's (which holds no lock on the
    token's row, and whose rollback does not undo it)."""
    token = make_token(stack)
    with scim_client(stack, token) as okta:
        assert_scim_error(okta.get("/Users/not-a-user"), 404, None)

    async def used(session: AsyncSession, org: Organization) -> list[object]:
        rows = await session.scalars(
            select(ScimToken.last_used_at).where(ScimToken.organization_id == org.id)
        )
        return list(rows)

    assert all(value is not None for value in in_org(stack.settings, "acme", used))


def test_a_tokens_authority_is_read_inside_the_writes_transaction(stack: Stack) -> None:
    """The creator's demotion, in flight (holding the organization's lock) when a SCIM write
    arrives: the write waits for it and acts on its outcome, refused."""
    token = make_token(stack, name="Setup")
    with scim_client(stack, token) as setup:
        vera = setup.post("/Users", json=user_body("vera@acme.example")).json()["id"]
    admin_token = _token_of(stack, signed_in(stack, "adam@acme.example"))

    async def demote_while_writing(session: AsyncSession, org: Organization) -> httpx.Response:
        await lock_organization(session, org.id)
        adam = (
            await session.execute(select(User).where(User.email == "adam@acme.example"))
        ).scalar_one()
        found = (
            await session.execute(
                select(Membership).where(
                    Membership.organization_id == org.id, Membership.user_id == adam.id
                )
            )
        ).scalar_one()
        found.role = "member"
        await session.flush()

        def write() -> httpx.Response:
            with scim_client(stack, admin_token) as okta:
                return okta.put(f"/Users/{vera}", json=user_body("vera@acme.example"))

        pending = asyncio.ensure_future(asyncio.to_thread(write))
        await asyncio.sleep(1.5)
        assert not pending.done()  # waiting for the demotion's transaction
        await session.commit()
        return await pending

    answer = in_org(stack.settings, "acme", demote_while_writing)
    assert_scim_error(answer, 403, None)
    assert "no longer manages" in answer.json()["detail"]


def test_a_secret_rotated_while_its_write_waits_acts_with_nothing(stack: Stack) -> None:
    """A rotation in flight (holding the organization's lock) when a write with the old secret
    arrives: the write waits, then finds its secret replaced and is refused. It never acts with
    the authority the rotation gave the new secret."""
    token = make_token(stack, name="Setup")
    with scim_client(stack, token) as setup:
        vera = setup.post("/Users", json=user_body("vera@acme.example")).json()["id"]

    async def rotate_while_writing(session: AsyncSession, org: Organization) -> httpx.Response:
        await lock_organization(session, org.id)
        row = (
            await session.execute(
                select(ScimToken).where(ScimToken.token_hash == hash_token(token))
            )
        ).scalar_one()
        row.token_hash = hash_token(new_token())
        await session.flush()

        def write() -> httpx.Response:
            with scim_client(stack, token) as okta:
                return okta.put(f"/Users/{vera}", json=user_body("vera@acme.example", active=False))

        pending = asyncio.ensure_future(asyncio.to_thread(write))
        await asyncio.sleep(1.5)
        assert not pending.done()  # waiting for the rotation's transaction
        await session.commit()
        return await pending

    answer = in_org(stack.settings, "acme", rotate_while_writing)
    assert_scim_error(answer, 401, None)
    with scim_client(stack, make_token(stack, name="After")) as after:
        assert after.get(f"/Users/{vera}").json()["active"] is True
