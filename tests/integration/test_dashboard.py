"""The member-management dashboard over real HTTP: the app and the dev IdP as real servers,
signed in through the dev IdP, on SQLite and PostgreSQL.

Full pages versus htmx fragments, search/sort/pages, invitations (and each inline refusal),
role changes, removal, leaving, ownership transfer, the last-owner rule, CSRF, per-role
refusals of forged requests, and the audit log. Tests are grouped (one stack each) to keep
the file fast.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.actions import AuditAction
from saas.audit.controllers import PERSONAL_ACTIONS
from saas.audit.services import Actor, AuditService
from saas.db.models import AuditEvent, Invitation, Membership, Organization, User
from saas.members.services import MembershipService
from saas.tenancy.permissions import Role
from tests.support.stack import Browser, Stack, in_acme

HX = {"HX-Request": "true"}
_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
ROW = 'data-testid="member-row"'


# ---- helpers ----------------------------------------------------------------------------


class Member:
    """One signed-in person on acme's dashboard, sending requests the way htmx does."""

    def __init__(self, stack: Stack, email: str) -> None:
        self.browser: Browser = stack.browser()
        page = self.browser.login(email)
        assert str(page.url) == stack.app_url + "/o/acme/", (email, page.url)
        token = _META_CSRF.search(page.text)
        assert token, "the layout carries the CSRF token for htmx"
        self.csrf = token[1]

    def get(self, path: str, *, htmx: bool = False, **headers: str) -> httpx.Response:
        return self.browser.get(path, headers={**(HX if htmx else {}), **headers})

    def post(
        self, path: str, data: dict[str, str] | None = None, *, htmx: bool = True, csrf: bool = True
    ) -> httpx.Response:
        headers = dict(HX) if htmx else {}
        if csrf:
            headers["X-CSRFToken"] = self.csrf
        return self.browser.client.post(
            self.browser.stack.app_url + path, data=data or {}, headers=headers
        )


def membership_of(stack: Stack, email: str) -> Membership | None:
    async def work(session: AsyncSession, org: Organization) -> Membership | None:
        stmt = (
            select(Membership)
            .join(User, User.id == Membership.user_id)
            .where(Membership.organization_id == org.id, User.email == email)
        )
        return (await session.execute(stmt)).scalar_one_or_none()

    return in_acme(stack.settings, work)


def member_id(stack: Stack, email: str) -> str:
    membership = membership_of(stack, email)
    assert membership is not None, email
    return str(membership.id)


def role_of(stack: Stack, email: str) -> str | None:
    membership = membership_of(stack, email)
    return membership.role if membership else None


def invitations(stack: Stack) -> dict[str, Invitation]:
    async def work(session: AsyncSession, org: Organization) -> dict[str, Invitation]:
        rows = await session.execute(select(Invitation).where(Invitation.organization_id == org.id))
        return {inv.email: inv for inv in rows.scalars()}

    return in_acme(stack.settings, work)


def audit_actions(stack: Stack) -> list[tuple[str, dict[str, Any]]]:
    async def work(session: AsyncSession, org: Organization) -> list[tuple[str, dict[str, Any]]]:
        rows = await session.execute(
            select(AuditEvent)
            .where(AuditEvent.organization_id == org.id)
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
        # Sign-ins are audited too; these tests look at what the dashboard changed.
        return [(e.action, e.details) for e in rows.scalars() if e.action != "auth.login"]

    return in_acme(stack.settings, work)


def add_members(stack: Stack, count: int, prefix: str = "extra") -> None:
    async def work(session: AsyncSession, org: Organization) -> None:
        service = MembershipService(session=session)
        for i in range(count):
            user = User(
                sub=f"auth0|{prefix}-{i}-{uuid.uuid4().hex[:6]}",
                email=f"{prefix}{i:03d}@acme.example",
                name=f"Zed {prefix.title()} {i:03d}",
            )
            session.add(user)
            await session.flush()
            await service.add(
                organization_id=org.id, user_id=user.id, role=Role.VIEWER, actor=Actor.system()
            )

    in_acme(stack.settings, work)


def rows_emails(html: str) -> list[str]:
    return re.findall(r'data-testid="member-row" data-email="([^"]+)"', html)


def toast_of(response: httpx.Response) -> str:
    return str(json.loads(response.headers["HX-Trigger"])["toast"]["message"])


_FLASH_REGION = re.compile(
    r'<div id="flash-region" class="flash-region" role="status"[^>]*>(.*?)</div>', re.S
)


def flashes(html: str) -> list[str]:
    """The flash messages a full page shows, from the layout's status region."""
    region = _FLASH_REGION.search(html)
    assert region, "every full page has the flash region"
    return re.findall(r'<p class="flash flash--\w+" data-testid="flash">([^<]*)</p>', region[1])


# ---- the member list ----------------------------------------------------------------------


def test_member_list_pages_fragments_search_sort_and_paging(stack: Stack) -> None:
    alice = Member(stack, "alice@acme.example")

    page = alice.get("/o/acme/members")
    assert page.status_code == 200
    assert "<html" in page.text
    assert 'aria-current="page">Members' in page.text
    assert 'href="/o/acme/audit"' in page.text  # owners see the audit tab
    assert {"alice@acme.example", "bob@acme.example", "adam@acme.example"} <= set(
        rows_emails(page.text)
    )
    assert "acme-saml" in page.text  # the connection, from the user's sub
    assert "Invite people" in page.text
    assert "Pending invitations" in page.text
    assert page.headers["vary"].lower().startswith("hx-request")

    fragment = alice.get("/o/acme/members", htmx=True)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert fragment.text.lstrip().startswith('<div id="members-results"')
    # A history restore (htmx cache miss) gets the whole page.
    restored = alice.get("/o/acme/members", htmx=True, **{"HX-History-Restore-Request": "true"})
    assert "<html" in restored.text

    search = alice.get("/o/acme/members?q=BOB", htmx=True)
    assert rows_emails(search.text) == ["bob@acme.example"]
    none = alice.get("/o/acme/members?q=nobody-like-this", htmx=True)
    assert ROW not in none.text
    assert "No member matches" in none.text
    # Direct URL of a search renders the full page with the search box filled in.
    direct = alice.get("/o/acme/members?q=bob")
    assert "<html" in direct.text
    assert 'value="bob"' in direct.text
    assert rows_emails(direct.text) == ["bob@acme.example"]

    by_email_desc = rows_emails(alice.get("/o/acme/members?sort=email&dir=desc", htmx=True).text)
    assert by_email_desc == sorted(by_email_desc, reverse=True)
    by_email = alice.get("/o/acme/members?sort=email", htmx=True)
    assert rows_emails(by_email.text) == sorted(by_email_desc)
    assert 'aria-sort="ascending"' in by_email.text
    # The search box's sort state follows along (out-of-band), so searching keeps the order.
    assert 'id="members-sort-state" hx-swap-oob="true"' in by_email.text
    # Unknown sort keys and mangled page cursors fall back instead of failing.
    assert alice.get("/o/acme/members?sort=password&after=abc", htmx=True).status_code == 200
    assert "Showing 4 of 4 members" in by_email.text

    add_members(stack, 30)
    first = alice.get("/o/acme/members?q=zed", htmx=True)
    assert len(rows_emails(first.text)) == 25
    assert "Showing 25 of 30 members matching \u201czed\u201d" in first.text
    assert 'rel="prev"' not in first.text
    second_url = link(first.text, "next")
    assert second_url.startswith("/o/acme/members?q=zed&after=")
    second = alice.get(second_url, htmx=True)
    assert second.headers["HX-Push-Url"] == second_url  # a reload shows these same rows
    assert len(rows_emails(second.text)) == 5
    assert not set(rows_emails(first.text)) & set(rows_emails(second.text))
    assert rows_emails(first.text) + rows_emails(second.text) == sorted(
        rows_emails(first.text) + rows_emails(second.text)
    )  # names are "Zed Extra 000".."029", in the order of their emails
    assert 'rel="next"' not in second.text
    back = alice.get(link(second.text, "prev"), htmx=True)
    assert rows_emails(back.text) == rows_emails(first.text)
    # The last page is full: the last 25 of the 30.
    last = alice.get("/o/acme/members?q=zed&at=last", htmx=True)
    everyone = rows_emails(first.text) + rows_emails(second.text)
    assert rows_emails(last.text) == everyone[-25:]
    assert 'rel="next"' not in last.text
    # A cursor made for another sort order is not applied to this one: the first page.
    by_email_next = link(alice.get("/o/acme/members?sort=email", htmx=True).text, "next")
    swapped = alice.get(by_email_next.replace("sort=email&dir=asc&", ""), htmx=True)
    assert swapped.status_code == 200
    assert rows_emails(swapped.text) == rows_emails(alice.get("/o/acme/members", htmx=True).text)
    # Organization-wide: the member count comes from the organization, kept as members change.
    assert "Showing 25 of 34 members" in alice.get("/o/acme/members", htmx=True).text


def link(html: str, rel: str) -> str:
    found = re.search(rf'rel="{rel}" href="([^"]+)"', html)
    assert found, f"no {rel} link"
    return found[1].replace("&amp;", "&")


def test_member_page_query_count_does_not_grow_with_the_page(stack: Stack) -> None:
    """The whole fragment request, measured on the server: the tenant row, then the page."""
    add_members(stack, 40)
    alice = Member(stack, "alice@acme.example")
    counts: dict[str, int] = {}
    first = alice.get("/o/acme/members?sort=joined", htmx=True)
    for name, url in {
        "first": "/o/acme/members?sort=joined",
        "after": link(first.text, "next"),
        "last": "/o/acme/members?sort=joined&at=last",
        "search": "/o/acme/members?q=zed",
    }.items():
        response = alice.get(url, htmx=True)
        assert response.status_code == 200
        timing = re.fullmatch(r'sql;desc="(\d+) statements"', response.headers["server-timing"])
        assert timing, response.headers["server-timing"]
        counts[name] = int(timing[1])
    # One more than the page's own since issue 14: the sync state of the rows' roles, read
    # for the whole page in one query on the outbox's target index.
    assert counts == {"first": 3, "after": 3, "last": 3, "search": 4}


# ---- invitations -----------------------------------------------------------------------


def test_invite_success_and_every_inline_refusal(stack: Stack) -> None:
    alice = Member(stack, "alice@acme.example")
    url = "/o/acme/members/invitations"

    ok = alice.post(url, {"emails": "Carol@ACME.example", "role": "member"})
    assert ok.status_code == 200, ok.text
    assert toast_of(ok) == "Invitation sent to carol@acme.example."
    assert 'id="invitations-panel"' in ok.text
    assert 'hx-swap-oob="true"' in ok.text
    assert 'data-email="carol@acme.example"' in ok.text
    carol = invitations(stack)["carol@acme.example"]
    assert carol.role == "member"
    ttl = carol.expires_at - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=6) < ttl <= datetime.timedelta(days=7)
    assert ("invitation.created", {"email": "carol@acme.example", "role": "member"}) in (
        audit_actions(stack)
    )

    batch = alice.post(url, {"emails": "dan@acme.example,\nerin@acme.example", "role": "viewer"})
    assert batch.status_code == 200
    assert toast_of(batch) == "2 invitations sent."
    assert {"dan@acme.example", "erin@acme.example"} <= set(invitations(stack))

    before = set(invitations(stack))
    audit_before = len(audit_actions(stack))
    refusals = [
        ({"emails": "not-an-email", "role": "member"}, 422, "is not a valid email address"),
        ({"emails": "bob@acme.example", "role": "member"}, 409, "is already a member"),
        ({"emails": "carol@acme.example", "role": "member"}, 409, "already has a pending"),
        ({"emails": "", "role": "member"}, 422, "Enter at least one email address"),
        ({"emails": "x@acme.example", "role": "emperor"}, 422, "Unknown role"),
        (
            {"emails": ",".join(f"p{i}@acme.example" for i in range(21)), "role": "member"},
            422,
            "at most 20",
        ),
        # All or nothing: one bad address refuses the whole batch.
        (
            {"emails": "fresh1@acme.example, bob@acme.example, bad@", "role": "member"},
            422,
            "Nobody was invited",
        ),
    ]
    for data, status, message in refusals:
        response = alice.post(url, data)
        assert response.status_code == status, (data, response.status_code, response.text)
        assert message in response.text, (data, response.text)
        assert "<html" not in response.text  # the invite card only, errors beside the field
        assert 'aria-invalid="true"' in response.text
        assert "HX-Trigger" not in response.headers
    batch_refusal = alice.post(
        url, {"emails": "fresh2@acme.example\nbob@acme.example", "role": "member"}
    )
    assert batch_refusal.status_code == 409
    assert "bob@acme.example is already a member" in batch_refusal.text
    assert "fresh2@acme.example" in batch_refusal.text  # the textarea keeps what was typed
    assert set(invitations(stack)) == before
    assert len(audit_actions(stack)) == audit_before

    # An admin cannot invite above their own role: refused beside the role field.
    adam = Member(stack, "adam@acme.example")
    above = adam.post(url, {"emails": "boss@acme.example", "role": "owner"})
    assert above.status_code == 403
    assert 'data-testid="invite-role-error"' in above.text
    assert "above your own" in above.text
    assert "boss@acme.example" not in invitations(stack)
    # ... and is not offered the owner role in the first place.
    adam_page = adam.get("/o/acme/members").text
    invite_select = adam_page.split('id="invite-role"', 1)[1].split("</select>", 1)[0]
    assert 'value="owner"' not in invite_select
    assert 'value="admin"' in invite_select

    # A plain form (no htmx) posts, redirects, and shows the result on the next page.
    plain = alice.post(url, {"emails": "plain@acme.example", "role": "member"}, htmx=False)
    assert plain.status_code == 303
    assert plain.headers["location"] == "/o/acme/members"
    assert flashes(alice.get("/o/acme/members").text) == ["Invitation sent to plain@acme.example."]
    assert flashes(alice.get("/o/acme/members").text) == []
    plain_refused = alice.post(url, {"emails": "bob@acme.example", "role": "member"}, htmx=False)
    assert plain_refused.status_code == 409
    assert "<html" in plain_refused.text
    assert "is already a member" in plain_refused.text


def test_pending_invitations_resend_revoke_and_expired(stack: Stack) -> None:
    alice = Member(stack, "alice@acme.example")
    alice.post("/o/acme/members/invitations", {"emails": "old@acme.example, new@acme.example"})
    found = invitations(stack)
    old, new = found["old@acme.example"], found["new@acme.example"]

    async def expire(session: AsyncSession, _: Organization) -> None:
        invitation = await session.get(Invitation, old.id)
        assert invitation is not None
        invitation.expires_at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)

    in_acme(stack.settings, expire)
    page = alice.get("/o/acme/members").text
    panel = page.split('id="invitations-panel"', 1)[1].split("</section>", 1)[0]
    old_item = panel.split('data-email="old@acme.example"', 1)[1].split("</li>", 1)[0]
    new_item = panel.split('data-email="new@acme.example"', 1)[1].split("</li>", 1)[0]
    assert "Expired" in old_item
    assert "Expired" not in new_item

    resent = alice.post(f"/o/acme/members/invitations/{old.id}/resend")
    assert resent.status_code == 200, resent.text
    assert toast_of(resent) == "Invitation sent again to old@acme.example."
    assert resent.text.lstrip().startswith('<section id="invitations-panel"')
    refreshed = invitations(stack)["old@acme.example"]
    assert refreshed.expires_at > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=6)
    assert (
        "Expired" not in resent.text.split('data-email="old@acme.example"', 1)[1].split("</li>")[0]
    )

    revoked = alice.post(f"/o/acme/members/invitations/{new.id}/revoke")
    assert revoked.status_code == 200
    assert toast_of(revoked) == "Invitation for new@acme.example revoked."
    assert 'data-email="new@acme.example"' not in revoked.text
    assert invitations(stack)["new@acme.example"].revoked_at is not None
    # Resending a revoked one is refused inline, in the panel: its message slot alone.
    again = alice.post(f"/o/acme/members/invitations/{new.id}/resend")
    assert again.status_code == 409
    assert "Only open invitations can be resent" in again.text
    assert again.headers["HX-Retarget"] == "#invitations-error"
    assert again.text.lstrip().startswith('<div id="invitations-error">')
    assert 'role="alert"' in again.text
    # Another tenant's (or a made-up) invitation id is simply not found.
    assert alice.post(f"/o/acme/members/invitations/{uuid.uuid4()}/revoke").status_code == 404
    actions = [action for action, _ in audit_actions(stack)]
    assert "invitation.resent" in actions
    assert "invitation.revoked" in actions


# ---- CSRF and per-role refusals --------------------------------------------------------


def test_csrf_and_forged_requests_by_members_and_viewers_change_nothing(stack: Stack) -> None:
    alice = Member(stack, "alice@acme.example")
    bob_id, vera_id = member_id(stack, "bob@acme.example"), member_id(stack, "vera@acme.example")

    no_token = alice.post(f"/o/acme/members/{bob_id}/role", {"role": "admin"}, csrf=False)
    assert no_token.status_code == 403
    plain_no_token = alice.post(
        "/o/acme/members/invitations", {"emails": "csrf@acme.example"}, htmx=False, csrf=False
    )
    assert plain_no_token.status_code == 403
    assert role_of(stack, "bob@acme.example") == "member"
    assert "csrf@acme.example" not in invitations(stack)

    audit_before = len(audit_actions(stack))
    for email in ("bob@acme.example", "vera@acme.example"):
        person = Member(stack, email)
        page = person.get("/o/acme/members")
        assert page.status_code == 200
        for control in (
            'data-testid="role-select"',
            "Invite people",
            "Pending invitations",
            "/remove",
            "Make owner",
            'href="/o/acme/audit"',
        ):
            assert control not in page.text, (email, control)
        assert "Leave organization" in page.text  # everyone may leave
        other = vera_id if email.startswith("bob") else bob_id
        forged = [
            (f"/o/acme/members/{other}/role", "admin"),
            (f"/o/acme/members/{other}/remove", ""),
            (f"/o/acme/members/{other}/transfer-ownership", ""),
            ("/o/acme/members/invitations", "x"),
        ]
        for path, role in forged:
            data = {"role": role, "emails": "forged@acme.example"}
            assert person.post(path, data).status_code == 403, (email, path)
        assert person.get("/o/acme/audit").status_code == 403
        assert person.get("/o/acme/audit", htmx=True).status_code == 403
    assert role_of(stack, "bob@acme.example") == "member"
    assert role_of(stack, "vera@acme.example") == "viewer"
    assert "forged@acme.example" not in invitations(stack)
    assert len(audit_actions(stack)) == audit_before


# ---- role changes, removal, leaving, transfer, the last owner ---------------------------


def test_role_change_remove_leave_transfer_and_the_last_owner(stack: Stack) -> None:
    alice = Member(stack, "alice@acme.example")
    alice_id = member_id(stack, "alice@acme.example")
    bob_id = member_id(stack, "bob@acme.example")
    vera_id = member_id(stack, "vera@acme.example")

    changed = alice.post(f"/o/acme/members/{bob_id}/role", {"role": "admin"})
    assert changed.status_code == 200, changed.text
    assert changed.text.lstrip().startswith(f'<tr id="member-{bob_id}"')
    assert '<option value="admin" selected>' in changed.text
    assert toast_of(changed).endswith(" is now an admin.")
    assert role_of(stack, "bob@acme.example") == "admin"
    assert ("member.role_changed", {"from": "member", "to": "admin"}) in audit_actions(stack)

    # The last owner cannot demote herself: the row comes back with the reason beside it.
    last = alice.post(f"/o/acme/members/{alice_id}/role", {"role": "admin"})
    assert last.status_code == 409
    assert "last owner" in last.text
    assert 'data-testid="row-error"' in last.text
    assert '<option value="owner" selected>' in last.text
    assert role_of(stack, "alice@acme.example") == "owner"
    # ... nor leave.
    leave = alice.post("/o/acme/members/leave")
    assert leave.status_code == 409
    assert "last owner" in leave.text
    assert leave.text.lstrip().startswith('<section id="self-card"')
    assert role_of(stack, "alice@acme.example") == "owner"

    removed = alice.post(f"/o/acme/members/{vera_id}/remove")
    assert removed.status_code == 200
    assert removed.text == ""
    assert "was removed" in toast_of(removed)
    assert membership_of(stack, "vera@acme.example") is None
    assert "member.removed" in [a for a, _ in audit_actions(stack)]

    # An admin cannot touch an owner: no control is rendered, and a forged request is refused
    # inline by the membership rules.
    adam = Member(stack, "adam@acme.example")
    adam_page = adam.get("/o/acme/members").text
    alice_row = adam_page.split(f'id="member-{alice_id}"', 1)[1].split("</tr>", 1)[0]
    assert "role-select" not in alice_row
    assert "/remove" not in alice_row
    refused = adam.post(f"/o/acme/members/{alice_id}/role", {"role": "viewer"})
    assert refused.status_code == 403
    assert "Only an owner" in refused.text
    assert adam.post(f"/o/acme/members/{alice_id}/remove").status_code == 403
    assert role_of(stack, "alice@acme.example") == "owner"

    # Transfer: bob becomes owner, alice admin, in one step.
    transferred = alice.post(f"/o/acme/members/{bob_id}/transfer-ownership")
    assert transferred.status_code == 200
    assert transferred.headers["HX-Refresh"] == "true"
    # A toast would not outlive the reload: the reloaded page says what happened.
    reloaded = alice.get("/o/acme/members").text
    assert flashes(reloaded) == ["Bob Brown is now the owner, and you are an admin."]
    assert role_of(stack, "bob@acme.example") == "owner"
    assert role_of(stack, "alice@acme.example") == "admin"
    assert "ownership.transferred" in [a for a, _ in audit_actions(stack)]
    # Alice is an admin now: no more ownership powers.
    assert alice.post(f"/o/acme/members/{bob_id}/transfer-ownership").status_code == 403

    # Leaving as a non-owner works, and sends the browser away from the organization.
    left = adam.post("/o/acme/members/leave")
    assert left.status_code == 200
    assert left.headers["HX-Redirect"] == "/select-organization"
    assert flashes(adam.get("/select-organization").text) == ["You left Acme Corp."]
    assert membership_of(stack, "adam@acme.example") is None
    assert "member.left" in [a for a, _ in audit_actions(stack)]
    assert adam.get("/o/acme/members").status_code == 404
    # A plain-form leave redirects.
    plain = alice.post("/o/acme/members/leave", htmx=False)
    assert plain.status_code == 303
    assert plain.headers["location"] == "/select-organization"


def test_plain_forms_say_on_the_next_page_what_they_did(stack: Stack) -> None:
    """Without htmx (no JavaScript) every change posts and redirects (303), and the next full
    page says what happened, once, in the layout's status region; htmx fragments in between
    leave it for that page. A refusal no fragment can show is the error page, with its status,
    and commits nothing."""
    alice = Member(stack, "alice@acme.example")
    bob_id, vera_id = member_id(stack, "bob@acme.example"), member_id(stack, "vera@acme.example")
    members = "/o/acme/members"

    def next_page_says(response: httpx.Response, message: str, location: str = members) -> None:
        assert response.status_code == 303, (response.status_code, response.text[:300])
        assert response.headers["location"] == location
        assert alice.get(members, htmx=True).status_code == 200  # a fragment shows no flash
        page = alice.get(location)
        assert flashes(page.text) == [message], page.text[:2000]
        assert flashes(alice.get(location).text) == []  # shown once, then gone

    role = alice.post(f"{members}/{bob_id}/role", {"role": "admin"}, htmx=False)
    next_page_says(role, "Bob Brown is now an admin.")
    assert role_of(stack, "bob@acme.example") == "admin"

    alice.post(f"{members}/invitations", {"emails": "one@acme.example, two@acme.example"})
    found = invitations(stack)
    one, two = found["one@acme.example"], found["two@acme.example"]
    resent = alice.post(f"{members}/invitations/{one.id}/resend", htmx=False)
    next_page_says(resent, "Invitation sent again to one@acme.example.")
    revoked = alice.post(f"{members}/invitations/{two.id}/revoke", htmx=False)
    next_page_says(revoked, "Invitation for two@acme.example revoked.")
    assert invitations(stack)["two@acme.example"].revoked_at is not None

    removed = alice.post(f"{members}/{vera_id}/remove", htmx=False)
    next_page_says(removed, "Vera Vance was removed from the organization.")
    assert membership_of(stack, "vera@acme.example") is None

    # The last owner demoting herself: the error page says why, with the refusal's status.
    audit_before = len(audit_actions(stack))
    alice_id = member_id(stack, "alice@acme.example")
    refused = alice.post(f"{members}/{alice_id}/role", {"role": "admin"}, htmx=False)
    assert refused.status_code == 409
    assert "<html" in refused.text
    assert "last owner" in refused.text
    assert flashes(refused.text) == []
    assert role_of(stack, "alice@acme.example") == "owner"
    assert len(audit_actions(stack)) == audit_before
    assert flashes(alice.get(members).text) == []

    transferred = alice.post(f"{members}/{bob_id}/transfer-ownership", htmx=False)
    next_page_says(transferred, "Bob Brown is now the owner, and you are an admin.")
    assert role_of(stack, "alice@acme.example") == "admin"

    left = alice.post(f"{members}/leave", htmx=False)
    assert left.status_code == 303
    assert left.headers["location"] == "/select-organization"
    elsewhere = alice.get("/select-organization")  # acme was her only organization
    assert flashes(elsewhere.text) == ["You left Acme Corp."]
    assert flashes(alice.get("/select-organization").text) == []


# ---- the audit log ----------------------------------------------------------------------


def test_audit_log_page_filters_and_keyset_paging(stack: Stack) -> None:
    alice = Member(stack, "alice@acme.example")
    bob_id = member_id(stack, "bob@acme.example")
    alice.post(f"/o/acme/members/{bob_id}/role", {"role": "viewer"})

    async def many_events(session: AsyncSession, org: Organization) -> None:
        bob = (
            await session.execute(select(User).where(User.email == "bob@acme.example"))
        ).scalar_one()
        audit = AuditService(session=session)
        for i in range(70):
            await audit.record(
                AuditAction.PROJECT_CREATED,
                actor=Actor(user_id=bob.id),
                organization_id=org.id,
                target_type="project",
                target_id=uuid.uuid4(),
                details={"name": f"Project {i:03d}"},
            )

    in_acme(stack.settings, many_events)

    async def total(session: AsyncSession, org: Organization) -> int:
        stmt = select(func.count()).where(AuditEvent.organization_id == org.id)
        return int((await session.execute(stmt)).scalar_one())

    events_total = in_acme(stack.settings, total)

    page = alice.get("/o/acme/audit")
    assert page.status_code == 200
    assert "<html" in page.text
    assert 'aria-current="page">Audit log' in page.text
    assert page.text.count('data-testid="audit-row"') == 50
    more = re.search(r'<tr class="sentinel" hx-get="([^"]+)" hx-trigger="revealed"', page.text)
    assert more
    assert "bob@acme.example" in page.text
    assert "Project 069" in page.text

    seen = page.text.count('data-testid="audit-row"')
    url: str | None = more[1].replace("&amp;", "&")
    while url:
        chunk = alice.get(url, htmx=True)
        assert chunk.status_code == 200
        assert "<html" not in chunk.text
        assert chunk.text.lstrip().startswith("<tr")
        seen += chunk.text.count('data-testid="audit-row"')
        nxt = re.search(r'hx-get="([^"]+)" hx-trigger="revealed"', chunk.text)
        url = nxt[1].replace("&amp;", "&") if nxt else None
    assert seen == events_total

    filtered = alice.get("/o/acme/audit?action=member.role_changed", htmx=True)
    assert filtered.text.lstrip().startswith('<div id="audit-results"')
    assert filtered.text.count('data-testid="audit-row"') == 1
    # Who did what to whom: the role change names both people.
    assert "alice@acme.example" in filtered.text
    assert "Bob" in filtered.text
    assert "member → viewer" in filtered.text
    by_bob = alice.get("/o/acme/audit?actor=bob@acme", htmx=True)
    assert by_bob.text.count('data-testid="audit-row"') == 50  # first page of bob's 70
    assert 'data-action="member.role_changed"' not in by_bob.text
    by_alice = alice.get("/o/acme/audit?actor=alice", htmx=True)
    assert 'data-action="member.role_changed"' in by_alice.text
    assert 'data-action="project.created"' not in by_alice.text
    empty = alice.get("/o/acme/audit?action=member.left")
    assert "No events match these filters" in empty.text
    # A garbled cursor reads as "from the newest" instead of failing.
    assert alice.get("/o/acme/audit?before=garbage", htmx=True).status_code == 200


def test_every_audit_action_reads_as_words_and_can_be_filtered(stack: Stack) -> None:
    """Each action the services can write shows its verb in the log and is offered as a filter,
    including those an operator or the SSO settings write (they once showed a bare code)."""

    async def one_of_each(session: AsyncSession, org: Organization) -> None:
        audit = AuditService(session=session)
        for action in AuditAction:
            await audit.record(action, actor=Actor.system(), organization_id=org.id)

    in_acme(stack.settings, one_of_each)
    alice = Member(stack, "alice@acme.example")
    page = alice.get("/o/acme/audit")
    assert page.status_code == 200
    for action in AuditAction:
        # A person's own session sign-outs are recorded without an organization: never in an
        # organization's log, so not offered as its filter (saas/audit/controllers.py).
        offered = f'<option value="{action.value}"' in page.text
        assert offered == (action not in PERSONAL_ACTIONS), action
        rows = alice.get(f"/o/acme/audit?action={action.value}", htmx=True).text
        assert f'data-action="{action.value}"' in rows, action
        assert f'<span class="muted small block">{action.label}</span>' in rows, action
    # A filter naming no known action shows everything rather than an invented option.
    unknown = alice.get("/o/acme/audit?action=no.such", htmx=True).text
    assert unknown.count('data-testid="audit-row"') >= len(AuditAction)
