"""Sessions findable by user: a person lists their sessions and ends any or all of them from
another browser; removal and suspension end the person's sessions in that organization at
once. On the file store and on Redis."""

from __future__ import annotations

import asyncio
import datetime
import html
import os
import re
import time
import uuid
from pathlib import Path
from urllib.parse import urljoin

import msgspec
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.account.controllers import handle_of
from saas.audit.actions import AuditAction
from saas.auth0.jobs import AUTH0_SESSION_REVOKE, revoke_auth0_session_later
from saas.db.models import AuditEvent, Membership, Organization, OutboxJob, OutboxStatus, User
from saas.demo.data import DEMO_PASSWORD
from saas.login.session_directory import PRUNE_SAMPLE, SessionDirectory
from saas.login.sessions import (
    AUTH0_SID,
    SESSION_STORE,
    USER_ID,
    create_stores,
    session_cookie_name,
)
from saas.stores import CountingRedisStore, IndexedFileStore
from tests.support.stack import Browser, Stack, in_acme

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
_HANDLE = re.compile(r'name="session" value="([0-9a-f]+)"')

STORES = pytest.mark.parametrize(
    "store",
    ["files", pytest.param("redis", marks=pytest.mark.stack(redis_url=REDIS_URL))],
)


def csrf(browser: Browser, path: str = "/account/sessions") -> str:
    found = _CSRF.search(browser.get(path).text)
    assert found
    return found[1]


def signed_in(stack: Stack, email: str, *, agent: str) -> Browser:
    browser = stack.browser()
    browser.client.headers["user-agent"] = agent
    page = browser.login(email)
    assert page.status_code == 200, page.text
    return browser


FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


def audit_actions(stack: Stack, action: AuditAction) -> list[AuditEvent]:
    async def read(session: AsyncSession, _: Organization) -> list[AuditEvent]:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.action == action.value))
        return list(rows)

    return in_acme(stack.settings, read)


@STORES
def test_sessions_are_listed_and_one_ends_another(stack: Stack, store: str) -> None:
    laptop = signed_in(stack, "alice@acme.example", agent=FIREFOX)
    phone = signed_in(stack, "alice@acme.example", agent=SAFARI)
    assert phone.get("/o/acme/").status_code == 200

    page = laptop.get("/account/sessions")
    assert page.status_code == 200
    assert page.text.count('data-testid="session"') == 2
    assert "Firefox on Linux" in page.text
    assert "Safari on iPhone" in page.text
    assert "this browser" in page.text
    assert "127.0.0.1" in page.text
    # The ids, the browsers' bearer secrets, are never on the page.
    for browser in (laptop, phone):
        session_id = browser.client.cookies.get("saas_session")
        assert session_id
        assert session_id not in page.text

    # The laptop's own row comes first; the phone's is the other one.
    handles = _HANDLE.findall(page.text)
    assert len(handles) == 2
    ended = laptop.client.post(
        stack.app_url + "/account/sessions/end",
        data={"session": handles[1], "_csrf_token": csrf(laptop)},
    )
    assert ended.status_code == 303
    after = laptop.follow(ended)
    assert "Signed out 1 session on Safari on iPhone" in after.text
    assert after.text.count('data-testid="session"') == 1

    # The phone is out at its next request, and stays out.
    refused = phone.get("/o/acme/")
    assert refused.status_code == 303
    assert refused.headers["location"].startswith("/o/acme/login")
    assert phone.get("/account/sessions").status_code == 303
    # The laptop is still in.
    assert laptop.get("/o/acme/").status_code == 200

    entries = audit_actions(stack, AuditAction.SESSION_ENDED)
    assert len(entries) == 1
    assert entries[0].details["device"] == "Safari on iPhone"


@STORES
def test_sign_out_all_other_sessions(stack: Stack, store: str) -> None:
    browsers = [signed_in(stack, "alice@acme.example", agent=FIREFOX) for _ in range(3)]
    keeper = browsers[0]
    done = keeper.client.post(
        stack.app_url + "/account/sessions/end-others", data={"_csrf_token": csrf(keeper)}
    )
    assert done.status_code == 303
    assert "Signed out 2 other sessions" in keeper.follow(done).text
    assert keeper.get("/o/acme/").status_code == 200
    for other in browsers[1:]:
        assert other.get("/o/acme/").status_code == 303
    assert len(audit_actions(stack, AuditAction.SESSION_ENDED)) == 2


def test_signing_out_here_from_the_list_ends_this_session(stack: Stack) -> None:
    browser = signed_in(stack, "alice@acme.example", agent=FIREFOX)
    page = browser.get("/account/sessions")
    (handle,) = _HANDLE.findall(page.text)
    out = browser.client.post(
        stack.app_url + "/account/sessions/end",
        data={"session": handle, "_csrf_token": csrf(browser)},
    )
    assert out.status_code == 303
    assert out.headers["location"] == "/logged-out"
    assert browser.get("/o/acme/").status_code == 303


def test_another_persons_session_cannot_be_ended(stack: Stack) -> None:
    alice = signed_in(stack, "alice@acme.example", agent=FIREFOX)
    bob = signed_in(stack, "bob@acme.example", agent=SAFARI)
    (bobs_handle,) = _HANDLE.findall(bob.get("/account/sessions").text)
    tried = alice.client.post(
        stack.app_url + "/account/sessions/end",
        data={"session": bobs_handle, "_csrf_token": csrf(alice)},
    )
    assert tried.status_code == 303
    assert "That session has ended already" in alice.follow(tried).text
    assert bob.get("/o/acme/").status_code == 200


def test_sessions_page_asks_for_sign_in_and_csrf(stack: Stack) -> None:
    anonymous = stack.browser()
    page = anonymous.get("/account/sessions")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")
    alice = signed_in(stack, "alice@acme.example", agent=FIREFOX)
    no_token = alice.client.post(stack.app_url + "/account/sessions/end-others")
    assert no_token.status_code == 403
    garbage = alice.client.post(
        stack.app_url + "/account/sessions/end",
        data={"session": "x" * 5000, "_csrf_token": csrf(alice)},
    )
    assert garbage.status_code in {303, 400, 422}


def membership_id(stack: Stack, email: str) -> str:
    async def find(session: AsyncSession, org: Organization) -> str:
        found = await session.scalar(
            select(Membership.id)
            .join(User, User.id == Membership.user_id)
            .where(Membership.organization_id == org.id, User.email == email)
        )
        assert found is not None
        return str(found)

    return in_acme(stack.settings, find)


@STORES
def test_removal_ends_the_removed_persons_sessions_at_once(stack: Stack, store: str) -> None:
    alice = signed_in(stack, "alice@acme.example", agent=FIREFOX)
    bob = signed_in(stack, "bob@acme.example", agent=SAFARI)
    assert bob.get("/o/acme/").status_code == 200
    assert "Safari on iPhone" in bob.get("/account/sessions").text

    removed = alice.client.post(
        stack.app_url + f"/o/acme/members/{membership_id(stack, 'bob@acme.example')}/remove",
        data={"_csrf_token": csrf(alice, "/o/acme/members")},
    )
    assert removed.status_code in {200, 303}, removed.text

    # Ended server-side: Bob's browser is anonymous everywhere, not only in acme.
    refused = bob.get("/o/acme/")
    assert refused.status_code == 303
    assert refused.headers["location"].startswith("/o/acme/login")
    assert bob.get("/account/sessions").status_code == 303
    entries = audit_actions(stack, AuditAction.SESSIONS_ENDED_ACCESS)
    assert [e.details["reason"] for e in entries] == ["removed"]
    assert alice.get("/o/acme/").status_code == 200


def test_suspension_ends_the_members_sessions(stack: Stack) -> None:
    bob = signed_in(stack, "bob@acme.example", agent=SAFARI)
    assert bob.get("/o/acme/").status_code == 200
    operator = signed_in(stack, "olivia@ops.example", agent=FIREFOX)
    done = operator.client.post(
        stack.app_url + "/admin/organizations/acme/status",
        data={"status": "suspended", "_csrf_token": csrf(operator, "/admin")},
    )
    assert done.status_code == 303, done.text
    assert bob.get("/account/sessions").status_code == 303  # signed out, not only refused
    entries = audit_actions(stack, AuditAction.SESSIONS_ENDED_ACCESS)
    assert [e.details["reason"] for e in entries] == ["organization_suspended"]


def test_a_session_the_commit_hook_missed_leaves_the_organization(stack: Stack) -> None:
    bob = signed_in(stack, "bob@acme.example", agent=SAFARI)
    assert bob.get("/o/acme/").status_code == 200

    async def remove_behind_the_apps_back(session: AsyncSession, org: Organization) -> None:
        bob_row = await session.scalar(select(User).where(User.email == "bob@acme.example"))
        assert bob_row is not None
        membership = await session.scalar(
            select(Membership).where(
                Membership.organization_id == org.id, Membership.user_id == bob_row.id
            )
        )
        await session.delete(membership)

    in_acme(stack.settings, remove_behind_the_apps_back)
    assert bob.get("/o/acme/").status_code == 404
    # The session is in no organization now: re-adding him would need a new authorization.
    listed = bob.get("/account/sessions")
    assert listed.status_code == 200
    assert " in Acme Corp" not in listed.text


def test_unique_handle_per_session() -> None:
    ids = {uuid.uuid4().hex for _ in range(100)}
    assert len({handle_of(i) for i in ids}) == 100
    assert all(len(handle_of(i)) == 32 for i in ids)


@pytest.mark.parametrize("store_kind", ["files", "redis"])
def test_a_new_session_prunes_gone_ones_from_its_users_set(tmp_path: Path, store_kind: str) -> None:
    """Someone who signs in often and never opens the list: each sign-in drops ids of gone
    sessions from the set (at most PRUNE_SAMPLE looked at), and never a live one."""

    async def run() -> None:
        store: IndexedFileStore | CountingRedisStore = (
            IndexedFileStore(tmp_path / "sessions", create_directories=True)
            if store_kind == "files"
            else CountingRedisStore(
                Redis.from_url(REDIS_URL),
                namespace=f"prune-{uuid.uuid4()}",
                handle_client_shutdown=True,
            )
        )
        async with store:
            try:
                await check(store)
            finally:
                await store.delete_all()

    async def check(store: IndexedFileStore | CountingRedisStore) -> None:
        directory = SessionDirectory(store, keep_seconds=3600)
        user, other = uuid.uuid4(), uuid.uuid4()
        key = f"user-sessions-{user}"

        async def open_session(session_id: str, owner: uuid.UUID = user, ttl: int = 3600) -> None:
            # As the session middleware does: the entry is stored, then registered.
            await store.set(session_id, msgspec.json.encode({USER_ID: str(owner)}), ttl)
            await directory.register(user, session_id)

        # A small set: a registration looks at all of it. Ended (deleted), expired (its time
        # ran out) and another person's entry under an id of this set are gone; the live stay.
        await open_session("live-1")
        await open_session("ended-1")
        await open_session("ended-2")
        await store.delete("ended-1")
        await store.delete("ended-2")
        await open_session("expiring", ttl=1)
        await open_session("not-theirs", owner=other)
        assert len(await store.members(key)) <= PRUNE_SAMPLE
        await asyncio.sleep(1.2)
        await open_session("live-2")
        assert await store.members(key) == {"live-1", "live-2"}

        # A large set: bounded work, PRUNE_SAMPLE ids at most per sign-in, and still no live one.
        dead = [f"dead-{n}" for n in range(3 * PRUNE_SAMPLE)]
        for session_id in dead:
            await store.set(session_id, msgspec.json.encode({USER_ID: str(user)}), 3600)
            await store.add_member(key, session_id, 3600)
            await store.delete(session_id)
        before = len(await store.members(key))
        await open_session("live-3")
        after = await store.members(key)
        assert before + 1 - PRUNE_SAMPLE <= len(after) < before + 1
        assert {"live-1", "live-2", "live-3"} <= after
        # Sign-ins keep it close to the live sessions, without anyone reading the list.
        for n in range(4, 4 + 3 * PRUNE_SAMPLE):
            await open_session(f"live-{n}")
        live = {f"live-{n}" for n in range(1, 4 + 3 * PRUNE_SAMPLE)}
        members = await store.members(key)
        assert live <= members
        assert len(members - live) < len(dead) // 2

    asyncio.run(run())


def user_id_of(stack: Stack, email: str) -> str:
    async def find(session: AsyncSession, _: Organization) -> str:
        found = await session.scalar(select(User.id).where(User.email == email))
        assert found is not None
        return str(found)

    return in_acme(stack.settings, find)


@STORES
def test_a_cookie_naming_another_store_entry_is_no_session(stack: Stack, store: str) -> None:
    """Litestar keys a session by its cookie's value, in the store that also holds each user's
    session index. A hand-written cookie naming Bob's index (his id is visible to every
    co-member) neither reads, overwrites nor deletes it: it counts as no cookie at all."""
    bob = signed_in(stack, "bob@acme.example", agent=SAFARI)
    index_key = f"user-sessions-{user_id_of(stack, 'bob@acme.example')}"
    attacker = stack.browser()
    cookie = session_cookie_name(stack.settings)

    def hostile() -> None:
        attacker.client.cookies.set(cookie, index_key)

    for path in ("/login", "/o/acme/", "/account/sessions"):
        hostile()
        answer = attacker.get(path)
        assert answer.status_code in {200, 303}, (path, answer.status_code)
        assert index_key not in answer.headers.get("set-cookie", "")
    # Starting a sign-in writes a session: under a fresh id, never under the hand-written one.
    token = csrf(attacker, "/login")
    hostile()
    started = attacker.client.post(
        stack.app_url + "/login", data={"email": "mallory@example.com", "_csrf_token": token}
    )
    assert started.status_code == 303, started.text
    assert f"{cookie}=" in started.headers.get("set-cookie", "")
    assert index_key not in started.headers.get("set-cookie", "")
    # Bob's index is intact: his session is still listed, and a new sign-in of his works.
    assert "Safari on iPhone" in bob.get("/account/sessions").text
    again = signed_in(stack, "bob@acme.example", agent=FIREFOX)
    listed = again.get("/account/sessions").text
    assert "Safari on iPhone" in listed
    assert "Firefox on Linux" in listed


# ---- the Auth0 session goes with the app's (the ID token's `sid`, revoked via the outbox) ---


def revocation_jobs(stack: Stack) -> list[OutboxJob]:
    async def read(session: AsyncSession, _: Organization) -> list[OutboxJob]:
        rows = await session.scalars(
            select(OutboxJob)
            .where(OutboxJob.kind == AUTH0_SESSION_REVOKE)
            .order_by(OutboxJob.created_at)
        )
        return list(rows)

    return in_acme(stack.settings, read)


def wait_until_done(stack: Stack, count: int) -> list[OutboxJob]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        jobs = revocation_jobs(stack)
        if len(jobs) == count and all(j.status == OutboxStatus.DONE.value for j in jobs):
            return jobs
        time.sleep(0.05)
    raise AssertionError(f"revocations not done: {[(j.status, j.last_error) for j in jobs]}")


def sid_of(browser: Browser) -> str:
    """The `sid` the app kept with this browser's session (the ID token's)."""
    session_id = browser.client.cookies.get("saas_session")
    assert session_id
    directory_entry = asyncio.run(_session_entry(browser.stack, session_id))
    sid = directory_entry.get(AUTH0_SID)
    assert isinstance(sid, str)
    assert sid
    return sid


async def _session_entry(stack: Stack, session_id: str) -> dict[str, object]:
    # The app's own session store, as its settings build it (Redis, or the file store).
    raw = await create_stores(stack.settings)[SESSION_STORE].get(session_id)
    assert raw is not None
    data = msgspec.json.decode(raw)
    assert isinstance(data, dict)
    return data


def next_click_asks_for_the_password(browser: Browser) -> None:
    """The ended browser's next click: to the IdP, which shows its sign-in page (its single
    sign-on session is gone), never a callback that signs it back in."""
    out = browser.get("/o/acme/")
    assert out.status_code == 303
    before = len(browser.history)
    page = browser.follow(out)
    assert str(page.url).startswith(browser.stack.idp_url + "/u/login"), page.url
    assert not any("/callback" in str(r.url) for r in browser.history[before:])


@STORES
def test_ending_another_session_revokes_its_auth0_session(stack: Stack, store: str) -> None:
    laptop = signed_in(stack, "bob@acme.example", agent=FIREFOX)
    phone = signed_in(stack, "bob@acme.example", agent=SAFARI)
    phone_sid, laptop_sid = sid_of(phone), sid_of(laptop)
    assert phone_sid != laptop_sid  # two browsers, two Auth0 sessions

    handles = _HANDLE.findall(laptop.get("/account/sessions").text)
    ended = laptop.client.post(
        stack.app_url + "/account/sessions/end",
        data={"session": handles[1], "_csrf_token": csrf(laptop)},
    )
    assert ended.status_code == 303
    assert "Auth0 is being asked to end the sign-in there too" in laptop.follow(ended).text

    (job,) = wait_until_done(stack, 1)
    assert job.payload["sid"] == phone_sid
    assert job.payload["device"] == "Safari on iPhone"
    assert job.organization_id is None
    next_click_asks_for_the_password(phone)

    # The laptop's own Auth0 session is untouched: a new authorization there is silent.
    assert laptop.get("/o/acme/").status_code == 200
    again = laptop.follow(laptop.get("/o/acme/login"))
    assert again.status_code == 200
    assert str(again.url).startswith(stack.app_url + "/o/acme"), again.url
    # Done: nothing left to show on the page.
    assert 'data-testid="revocation"' not in laptop.get("/account/sessions").text


def test_signing_out_all_others_revokes_each_auth0_session_once(stack: Stack) -> None:
    browsers = [signed_in(stack, "alice@acme.example", agent=FIREFOX) for _ in range(3)]
    keeper = browsers[0]
    others = {sid_of(b) for b in browsers[1:]}
    done = keeper.client.post(
        stack.app_url + "/account/sessions/end-others", data={"_csrf_token": csrf(keeper)}
    )
    assert done.status_code == 303
    jobs = wait_until_done(stack, 2)
    assert {j.payload["sid"] for j in jobs} == others
    for other in browsers[1:]:
        next_click_asks_for_the_password(other)
    assert keeper.get("/o/acme/").status_code == 200


def test_a_revocation_that_failed_or_waits_is_shown_not_hidden(stack: Stack) -> None:
    """Nothing that failed looks like success: a revocation Auth0 refused, or has not done
    yet, is on the page with what it means for that browser."""
    alice = signed_in(stack, "alice@acme.example", agent=FIREFOX)

    async def add(session: AsyncSession, _: Organization) -> None:
        user = await session.scalar(select(User).where(User.email == "alice@acme.example"))
        assert user is not None
        revoke_auth0_session_later(session, user.id, "sid-refused", device="Safari on iPhone")
        revoke_auth0_session_later(session, user.id, "sid-waiting", device="Firefox on Linux")
        await session.flush()
        jobs = {
            j.payload["sid"]: j
            for j in await session.scalars(
                select(OutboxJob).where(OutboxJob.kind == AUTH0_SESSION_REVOKE)
            )
        }
        far = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        jobs["sid-refused"].status = OutboxStatus.FAILED.value
        jobs["sid-refused"].last_error = "POST /api/v2/sessions/sid-refused/revoke: 403 Forbidden"
        jobs["sid-waiting"].next_attempt_at = far  # the worker leaves it alone
        await session.commit()

    in_acme(stack.settings, add)
    page = alice.get("/account/sessions").text
    assert page.count('data-testid="revocation"') == 2
    assert "not signed out at Auth0" in page
    assert "The app is not allowed to make this change at Auth0" in page
    assert "this app asks it for the password again" in page
    assert "waiting for Auth0" in page


@pytest.mark.stack(auth0_revoke_sessions=False)
def test_without_auth0_session_management_the_page_says_what_that_means(stack: Stack) -> None:
    """A tenant without Auth0's Enterprise session management: no revocation is queued, and
    the page and the message say honestly that the other browser may come back by itself."""
    laptop = signed_in(stack, "bob@acme.example", agent=FIREFOX)
    phone = signed_in(stack, "bob@acme.example", agent=SAFARI)
    page = laptop.get("/account/sessions")
    assert 'data-testid="auth0-sessions-note"' in page.text
    handles = _HANDLE.findall(page.text)
    ended = laptop.client.post(
        stack.app_url + "/account/sessions/end",
        data={"session": handles[1], "_csrf_token": csrf(laptop)},
    )
    after = laptop.follow(ended).text
    assert "may sign in again without a password until the Auth0 session ends" in after
    assert revocation_jobs(stack) == []
    # Which is what happens: the IdP's session signs the phone straight back in.
    back = phone.follow(phone.get("/o/acme/"))
    assert back.status_code == 200
    assert str(back.url).startswith(stack.app_url + "/o/acme")


@pytest.mark.stack(outbox_worker_enabled=False)
def test_before_auth0_revoked_it_the_ended_browser_must_still_authenticate_afresh(
    stack: Stack,
) -> None:
    """No worker runs, so the revocation waits and the IdP still has the phone's session. The
    callback sees that the answer came from a session its person ended and asks the IdP to
    authenticate afresh (prompt=login): the phone is asked for its password, not signed in."""
    laptop = signed_in(stack, "bob@acme.example", agent=FIREFOX)
    phone = signed_in(stack, "bob@acme.example", agent=SAFARI)
    handles = _HANDLE.findall(laptop.get("/account/sessions").text)
    laptop.client.post(
        stack.app_url + "/account/sessions/end",
        data={"session": handles[1], "_csrf_token": csrf(laptop)},
    )
    (job,) = revocation_jobs(stack)
    assert job.status == OutboxStatus.PENDING.value
    assert "waiting for Auth0" in laptop.get("/account/sessions").text

    out = phone.get("/o/acme/")
    before = len(phone.history)
    page = phone.follow(out)
    assert str(page.url).startswith(stack.idp_url + "/u/login"), page.url
    hops = [str(r.url) for r in phone.history[before:]]
    assert any("/callback" in url for url in hops)  # the IdP's silent answer, not taken
    assert any("prompt=login" in r.headers.get("location", "") for r in phone.history[before:])
    assert phone.get("/account/sessions").status_code == 303  # nobody signed in

    # Signing in afresh, with the password, is what it takes; the laptop was never touched.
    if "Choose how you sign in" in page.text:
        link = re.search(r'href="(/u/login/acme-saml[^"]+)"', page.text)
        assert link
        page = phone.follow(phone.client.get(urljoin(str(page.url), html.unescape(link[1]))))
    back = phone.follow(
        phone.submit(page, {"email": "bob@acme.example", "password": DEMO_PASSWORD})
    )
    assert back.status_code == 200, back.text
    assert str(back.url).startswith(stack.app_url + "/o/acme")
    assert laptop.get("/o/acme/").status_code == 200


@pytest.mark.stack(outbox_worker_enabled=False)
def test_an_ended_browser_that_drops_prompt_login_is_still_refused(stack: Stack) -> None:
    """`prompt=login` is a parameter of a redirect the browser follows itself. The phone's
    holder removes it, and the IdP answers silently from the ended session again: the callback
    refuses that answer with a page (nothing signed in), rather than taking it because a fresh
    sign-in had been asked for."""
    laptop = signed_in(stack, "bob@acme.example", agent=FIREFOX)
    phone = signed_in(stack, "bob@acme.example", agent=SAFARI)
    handles = _HANDLE.findall(laptop.get("/account/sessions").text)
    laptop.client.post(
        stack.app_url + "/account/sessions/end",
        data={"session": handles[1], "_csrf_token": csrf(laptop)},
    )
    assert [job.status for job in revocation_jobs(stack)] == [OutboxStatus.PENDING.value]

    answer = phone.get("/o/acme/")
    dropped = 0
    for _ in range(15):
        location = answer.headers.get("location")
        if answer.status_code not in {302, 303} or location is None:
            break
        url = urljoin(str(answer.url), location)
        if "prompt=login" in url:
            url = url.replace("&prompt=login", "").replace("prompt=login&", "")
            dropped += 1
        answer = phone.client.get(url)
    assert dropped == 1
    assert answer.status_code == 409, answer.text
    assert "This browser was signed out" in answer.text
    assert phone.get("/account/sessions").status_code == 303  # nobody signed in
    assert laptop.get("/o/acme/").status_code == 200
