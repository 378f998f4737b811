"""A browser's requests run side by side (two tabs, htmx fragments, a sign-in started while the
page it left still loads), and each writes back only what it changed in the session.

Before, a request wrote back the whole session as it had loaded it: a sign-in started meanwhile
lost its pending state (the callback answered `state_mismatch`), and a request that outlived a
sign-in in another tab expired the new session's cookie. Real servers, a request held in
flight on a raw socket (`HeldRequest`), on the file store and on Redis.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from saas.login.sessions import session_cookie_name
from saas.stores import CountingRedisStore, IndexedFileStore
from tests.integration.test_stale_authority import DashboardUser, hold
from tests.support.held_request import HeldRequest, HeldResponse
from tests.support.stack import Stack

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

STORES = pytest.mark.parametrize(
    "store",
    ["files", pytest.param("redis", marks=pytest.mark.stack(redis_url=REDIS_URL))],
)


def in_flight(alice: DashboardUser) -> HeldRequest:
    """A dashboard request that has loaded the session and waits for its body. The empty name
    is refused, so the request writes nothing but the session."""
    return hold(alice.held("/o/acme/projects/", {"name": ""}, htmx=True))


def take_cookies(client: httpx.Client, answer: HeldResponse) -> None:
    """What a browser does with the answer's Set-Cookie headers (cookies ignore ports)."""
    for header in answer.set_cookies:
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name, morsel in cookie.items():
            client.cookies.delete(name)
            if morsel["max-age"] != "0":
                client.cookies.set(name, morsel.value, domain="127.0.0.1", path="/")


def session_id(stack: Stack, client: httpx.Client) -> str | None:
    return client.cookies.get(session_cookie_name(stack.settings))


@STORES
def test_a_sign_in_started_while_another_request_runs_finds_its_state(
    stack: Stack, store: str
) -> None:
    alice = DashboardUser(stack, "alice@acme.example")
    held = in_flight(alice)

    # A second tab signs in again; her IdP session makes it silent.
    started = alice.browser.get("/o/acme/login")
    assert started.status_code == 303, started.text
    answer = held.finish()
    assert answer.status_code < 500, answer.text
    take_cookies(alice.browser.client, answer)

    landed = alice.browser.follow(started)
    assert landed.status_code == 200, (landed.url, landed.text[:400])
    assert str(landed.url) == stack.app_url + "/o/acme/"


@STORES
def test_a_request_that_outlives_a_sign_in_elsewhere_keeps_the_new_session(
    stack: Stack, store: str
) -> None:
    alice = DashboardUser(stack, "alice@acme.example")
    before = session_id(stack, alice.browser.client)
    held = in_flight(alice)

    landed = alice.browser.follow(alice.browser.get("/o/acme/login"))
    assert str(landed.url) == stack.app_url + "/o/acme/"
    after = session_id(stack, alice.browser.client)
    assert after
    assert after != before  # signing in rotated the id

    answer = held.finish()
    assert answer.status_code < 500, answer.text
    take_cookies(alice.browser.client, answer)
    assert session_id(stack, alice.browser.client) == after
    assert alice.browser.get("/o/acme/").status_code == 200
    # The id that request started with is not brought back to life by its write-back.
    replay = httpx.get(
        stack.app_url + "/o/acme/", cookies={session_cookie_name(stack.settings): before or ""}
    )
    assert replay.status_code == 303
    assert replay.headers["location"].startswith("/o/acme/login")


@STORES
def test_a_request_that_outlives_signing_out_leaves_the_session_ended(
    stack: Stack, store: str
) -> None:
    alice = DashboardUser(stack, "alice@acme.example")
    before = session_id(stack, alice.browser.client)
    held = in_flight(alice)

    out = alice.browser.client.post(stack.app_url + "/logout", headers={"X-CSRFToken": alice.csrf})
    assert out.status_code == 303, out.text
    answer = held.finish()
    assert answer.status_code < 500, answer.text
    name = session_cookie_name(stack.settings)
    assert not [c for c in answer.set_cookies if c.startswith(f"{name}={before}")]
    replay = httpx.get(stack.app_url + "/o/acme/", cookies={name: before or ""})
    assert replay.status_code == 303
    assert replay.headers["location"].startswith("/o/acme/login")


WRITERS = 6  # about as many requests as a browser sends to one host at once
CHANGES_EACH = 10


@pytest.mark.parametrize("store_kind", ["files", "redis"])
def test_side_by_side_changes_of_one_entry_all_land(tmp_path: Path, store_kind: str) -> None:
    """The store's read-change-write of one entry lets no other write in between: writers
    racing on one key (on Redis, each with its own connection, as separate app processes
    would) each add their own item and none is lost."""

    def open_store(namespace: str) -> IndexedFileStore | CountingRedisStore:
        if store_kind == "files":
            return shared_files
        return CountingRedisStore(
            Redis.from_url(REDIS_URL), namespace=namespace, handle_client_shutdown=True
        )

    shared_files = IndexedFileStore(tmp_path / "sessions", create_directories=True)

    def adding(item: str) -> Callable[[bytes | None], bytes]:
        def change(current: bytes | None) -> bytes:
            items = msgspec.json.decode(current, type=list[str]) if current else []
            return msgspec.json.encode([*items, item])

        return change

    async def writer(store: IndexedFileStore | CountingRedisStore, number: int) -> None:
        for change_number in range(CHANGES_EACH):
            await store.change("shared", adding(f"{number}-{change_number}"), expires_in=60)
            await asyncio.sleep(0)

    async def run() -> list[str]:
        namespace = f"side-by-side-{uuid.uuid4()}"
        stores = [open_store(namespace) for _ in range(WRITERS)]
        try:
            await asyncio.gather(*(writer(store, n) for n, store in enumerate(stores)))
            raw = await stores[0].get("shared")
            assert raw is not None
            return msgspec.json.decode(raw, type=list[str])
        finally:
            await stores[0].delete_all()
            for store in stores if store_kind == "redis" else ():
                await store.__aexit__(None, None, None)

    landed = asyncio.run(run())
    assert sorted(landed) == sorted(f"{n}-{c}" for n in range(WRITERS) for c in range(CHANGES_EACH))


@pytest.mark.parametrize("store_kind", ["files", "redis"])
def test_a_burst_of_the_same_change_settles_without_writing_it_again(
    tmp_path: Path, store_kind: str
) -> None:
    """Many requests of one session at once that all move its last-seen second to the same
    value: the first writes it, each of the others finds it written and writes nothing (so
    none exhausts its attempts and answers 503), and an unchanged entry keeps its expiry."""
    shared_files = IndexedFileStore(tmp_path / "sessions", create_directories=True)

    def open_store(namespace: str) -> IndexedFileStore | CountingRedisStore:
        if store_kind == "files":
            return shared_files
        return CountingRedisStore(
            Redis.from_url(REDIS_URL), namespace=namespace, handle_client_shutdown=True
        )

    def seen_at(second: int) -> Callable[[bytes | None], bytes]:
        def change(current: bytes | None) -> bytes:
            session = msgspec.json.decode(current) if current else {}
            return msgspec.json.encode({**session, "last_seen_at": second})

        return change

    async def run() -> tuple[bytes | None, int | None]:
        namespace = f"burst-{uuid.uuid4()}"
        stores = [open_store(namespace) for _ in range(32)]
        try:
            await stores[0].set("session", msgspec.json.encode({"user_id": "u1"}), 60)
            await asyncio.gather(
                *(store.change("session", seen_at(1_000), expires_in=3600) for store in stores)
            )
            # The same value again is not written: an expiry set since then stands.
            written = await stores[0].get("session")
            assert written is not None
            await stores[0].set("session", written, 60)
            await stores[0].change("session", seen_at(1_000), expires_in=3600)
            return await stores[0].get("session"), await stores[0].expires_in("session")
        finally:
            await stores[0].delete_all()
            for store in stores if store_kind == "redis" else ():
                await store.__aexit__(None, None, None)

    value, expires_in = asyncio.run(run())
    assert value is not None
    assert msgspec.json.decode(value) == {"user_id": "u1", "last_seen_at": 1_000}
    assert expires_in is not None
    assert expires_in <= 60


def test_a_dead_session_id_is_dropped_not_reused(stack: Stack) -> None:
    """A cookie whose session is gone (ended elsewhere, expired) is expired on the next answer,
    and a sign-in started with it is kept under a new id: whoever else held the old id (a
    stolen cookie) shares nothing with the sign-in."""
    name = session_cookie_name(stack.settings)
    dead = "ab" * 32
    answer = httpx.get(stack.app_url + "/login", cookies={name: dead})
    expired = [c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    assert expired, answer.headers
    assert "Max-Age=0" in expired[0]
    started = httpx.get(stack.app_url + "/o/acme/login", cookies={name: dead})
    assert started.status_code == 303
    kept = started.cookies.get(name)
    assert kept
    assert kept != dead
