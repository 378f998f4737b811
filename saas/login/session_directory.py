"""Sessions findable by their user: a set of session ids per user beside the session entries.

The session store keeps each session under its id (saas.login.sessions); this adds, in the same
store, one member set per user (`user-sessions-<user id>`: a Redis set, or a JSON list in the
file store) that lives as long as the longest session in it can. A session is added to its
user's set when it is opened (the id is rotated at sign-in), and an id whose session expired or
ended is dropped from the set the next time the set is read. Someone who signs in often and never
opens the list would keep the set alive and growing (every sign-in adds an id and renews the set's
lifetime), so each registration also looks at a few ids picked at random (`PRUNE_SAMPLE`) and
drops those whose session is gone: bounded work per sign-in, and a set that stays close to the
number of live sessions (with at most one id in `PRUNE_SAMPLE` stale, a sample finds one on
average).

Ending a session deletes its entry: the browser that holds it is anonymous at its next request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec

from saas.login.sessions import (
    ADDRESS,
    AUTH0_SID,
    CREATED_AT,
    DEVICE,
    LAST_SEEN_AT,
    ORGANIZATION_ID,
    SESSION_STORE,
    USER_ID,
)
from saas.stores import MemberSets

if TYPE_CHECKING:
    from collections.abc import Iterable

    from litestar import Litestar
    from litestar.stores.base import Store


# How many ids of the user's set a registration checks (one store read each).
PRUNE_SAMPLE = 8


def _index_key(user_id: UUID | str) -> str:
    return f"user-sessions-{user_id}"


@dataclass(frozen=True, slots=True)
class SessionSummary:
    session_id: str
    device: str
    address: str
    created_at: int
    last_seen_at: int
    organization_id: str | None
    # The Auth0 session it came from (the ID token's `sid`), if the sign-in said.
    auth0_sid: str | None = None


_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)
_HEADLESS = re.compile(r"HeadlessChrome/")


def describe_device(user_agent: str | None) -> str:
    """A person's words for a User-Agent: "Firefox on Linux". Never the raw header, which is
    long and chosen by the client."""
    agent = user_agent or ""
    browser = "Headless Chrome" if _HEADLESS.search(agent) else None
    browser = browser or next((name for token, name in _BROWSERS if token in agent), None)
    system = next((name for token, name in _SYSTEMS if token in agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system or ""
    if agent.startswith("python-httpx"):
        return "A program (httpx)"
    return "Unknown device"


class SessionDirectory:
    """The sessions of each user, in the application's session store."""

    def __init__(self, store: Store, *, keep_seconds: int) -> None:
        if not isinstance(store, MemberSets):
            raise TypeError(f"the session store {type(store).__name__} cannot index by user")
        self._store = store
        self._sets: MemberSets = store
        self._keep_seconds = keep_seconds

    @classmethod
    def of(cls, app: Litestar) -> SessionDirectory:
        settings = app.state["settings"]
        return cls(
            app.stores.get(SESSION_STORE), keep_seconds=settings.session_absolute_timeout_seconds
        )

    async def register(self, user_id: UUID | str, session_id: str) -> None:
        """Add the session (already in the store) to its user's set, and drop up to
        `PRUNE_SAMPLE` ids of gone sessions from it."""
        key = _index_key(user_id)
        await self._sets.add_member(key, session_id, self._keep_seconds)
        sample = await self._sets.sample_members(key, PRUNE_SAMPLE)
        gone = [
            other
            for other in sample
            if other != session_id and not self._is_users(await self._load(other), user_id)
        ]
        await self._sets.remove_members(key, gone)

    @staticmethod
    def _is_users(data: dict[str, Any] | None, user_id: UUID | str) -> bool:
        return data is not None and str(data.get(USER_ID)) == str(user_id)

    async def _load(self, session_id: str) -> dict[str, Any] | None:
        raw = await self._store.get(session_id)
        if raw is None:
            return None
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return None
        return data if isinstance(data, dict) else None

    async def sessions_of(self, user_id: UUID | str) -> list[SessionSummary]:
        """The user's live sessions, most recently seen first; ids of gone ones are dropped."""
        key = _index_key(user_id)
        found: list[SessionSummary] = []
        gone: list[str] = []
        for session_id in await self._sets.members(key):
            data = await self._load(session_id)
            if data is None or not self._is_users(data, user_id):
                gone.append(session_id)
                continue
            created = _int(data.get(CREATED_AT))
            org = data.get(ORGANIZATION_ID)
            sid = data.get(AUTH0_SID)
            found.append(
                SessionSummary(
                    session_id=session_id,
                    device=str(data.get(DEVICE) or "Unknown device"),
                    address=str(data.get(ADDRESS) or "unknown"),
                    created_at=created,
                    last_seen_at=_int(data.get(LAST_SEEN_AT)) or created,
                    organization_id=str(org) if org else None,
                    auth0_sid=sid if isinstance(sid, str) and sid else None,
                )
            )
        await self._sets.remove_members(key, gone)
        found.sort(key=lambda s: (s.last_seen_at, s.session_id), reverse=True)
        return found

    async def end(self, user_id: UUID | str, session_ids: Iterable[str]) -> list[str]:
        """End those of `session_ids` that are this user's; returns the ids ended."""
        mine = await self._sets.members(_index_key(user_id))
        ended = [session_id for session_id in session_ids if session_id in mine]
        for session_id in ended:
            await self._store.delete(session_id)
        await self._sets.remove_members(_index_key(user_id), ended)
        return ended

    async def end_in_organization(self, user_id: UUID | str, organization_id: UUID | str) -> int:
        """End every session of the user whose active organization is `organization_id`."""
        in_org = [
            s.session_id
            for s in await self.sessions_of(user_id)
            if s.organization_id == str(organization_id)
        ]
        return len(await self.end(user_id, in_org))


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0
