"""Server-side sessions: only an opaque id in the cookie, everything else in the store.

- Redis when REDIS_URL is set (any number of app processes share it), a file store otherwise
  (one process only; expired files are swept by `saas.stores.sweep_expired_entries`).
- Cookie: HttpOnly, SameSite=Lax; Secure and the `__Host-` prefix outside development.
- The id is rotated at login (no session fixation) and the data carries its own idle and
  absolute deadlines, checked on every request.
- A request writes back only what it changed, onto what the store holds by then, atomically:
  a browser's requests run side by side and must not undo each other's writes.
- The session holds ids and timestamps, and one token: the ID token of the sign-in, kept
  server-side only as the `id_token_hint` of the sign-out (OpenID Connect RP-Initiated Logout
  1.0 §2). It reaches the browser once, in the sign-out redirect to the provider, when the
  session it belonged to is already gone; never in a cookie.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware import DefineMiddleware
from litestar.middleware.session.base import SessionMiddleware
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.stores.base import Store
from litestar.types import Empty
from redis.exceptions import RedisError

from saas.config import Settings
from saas.stores import (
    ChangeableEntries,
    CountingFileStore,
    CountingRedisStore,
    IndexedFileStore,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from litestar.types import ASGIApp, Message, Receive, Scope, ScopeSession, Send

logger = structlog.get_logger("saas.sessions")

SESSION_STORE = "sessions"
RATE_LIMIT_STORE = "ratelimit"
_ROTATE = "_rotate"
_ROTATED_ID = "saas.rotated_session_id"
# The session's bytes as this request loaded them (absent when it loaded none).
_LOADED = "saas.loaded_session"
# The id given to a request whose cookie held no id this backend could have made.
_FRESH_ID = "saas.fresh_session_id"

# Session keys, in one place.
USER_ID = "user_id"
ORGANIZATION_ID = "organization_id"
CREATED_AT = "created_at"
LAST_SEEN_AT = "last_seen_at"
PENDING_LOGIN = "pending_login"
ID_TOKEN = "id_token"  # noqa: S105  (a key name)
# The ID token's `sid`: the Auth0 session this sign-in came from, revoked at Auth0 when the
# session is ended from "Your sessions" (saas/auth0/jobs.py `revoke_auth0_session_later`).
AUTH0_SID = "auth0_sid"
DEVICE = "device"  # the User-Agent in a person's words, for "Your sessions"
ADDRESS = "address"  # the client address the session was opened from
# The organization whose sign-in was confirmed with multi-factor authentication (the ID
# token's `amr` held "mfa"); only that one: a session stepped up for one organization does not
# count for another (saas.login.mfa).
MFA_ORGANIZATION_ID = "mfa_organization_id"
# The session's `last_seen_at` as the request found it, before this request refreshed it.
PREVIOUS_SEEN = "saas.previous_seen"

ONE_YEAR_SECONDS = 365 * 24 * 3600


def merge_changes(
    started_from: dict[str, Any],
    changed: dict[str, Any],
    current: dict[str, Any],
    *,
    by_entry: frozenset[str] = frozenset({PENDING_LOGIN}),
) -> dict[str, Any]:
    """`current` with the changes that turned `started_from` into `changed` applied to it:
    keys added, replaced or removed. The keys in `by_entry` (the pending sign-ins, keyed by
    state) are merged entry by entry, so two tabs' sign-ins both survive, and dropped when
    emptied; every other value is replaced whole."""
    merged = dict(current)
    for key in started_from.keys() | changed.keys():
        before, after, now = started_from.get(key), changed.get(key), current.get(key)
        if key in changed and key in started_from and after == before:
            continue  # not this request's change: whatever the store holds now stays
        if key in by_entry and isinstance(now, dict):
            nested = merge_changes(
                before if isinstance(before, dict) else {},
                after if isinstance(after, dict) else {},
                now,
                by_entry=frozenset(),
            )
            if nested:
                merged[key] = nested
            else:
                merged.pop(key, None)
        elif key in changed:
            merged[key] = after
        else:
            merged.pop(key, None)
    return merged


def _is_hex(value: str) -> bool:
    return all(character in "0123456789abcdef" for character in value)


def session_cookie_name(settings: Settings) -> str:
    # Cookies ignore ports: the dev IdP on :8001 must never share our cookie's name.
    return "__Host-saas_session" if settings.secure_cookies else "saas_session"


class RotatingSessionBackend(ServerSideSessionBackend):
    """Litestar's server-side backend, plus id rotation on request, each signed-in session
    indexed under its user (saas.login.session_directory), and a session ended elsewhere
    (by its owner in another browser, or when access ended) not written back by a request
    that was in flight when it ended."""

    def cookie_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
        """The session id the browser sent, when it is one this backend could have made (hex of
        `session_id_bytes` random bytes). Litestar uses the cookie's value as the store key, and
        the same store holds other entries (each user's session index, saas.login.
        session_directory): any other value counts as no cookie, so a client never chooses which
        entry its session reads, overwrites or deletes."""
        value = connection.cookies.get(self.config.key)
        if value and len(value) == 2 * self.config.session_id_bytes and _is_hex(value):
            return value
        return None

    async def load_from_connection(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if session_id := self.cookie_session_id(connection):
            store = self.config.get_store_from_app(connection.scope["app"])
            raw = await self.get(session_id, store=store)
            if raw is not None:
                data = self.deserialize_data(raw)
                # What this request started from: its write-back applies only what it changed.
                connection.scope[_LOADED] = raw  # type: ignore[literal-required]
        return data

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        rotated = connection.scope.get(_ROTATED_ID)
        if rotated:
            return str(rotated)
        # Only an id whose session this request found: a dead id (ended, expired, or never
        # made here) is not handed a new session, which its old holder would share.
        if _LOADED in connection.scope and (sent := self.cookie_session_id(connection)):
            return sent
        fresh = connection.scope.get(_FRESH_ID)
        if not fresh:
            fresh = connection.scope[_FRESH_ID] = self.generate_session_id()  # type: ignore[literal-required]
        return str(fresh)

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        store = self.config.get_store_from_app(connection.scope["app"])
        if scope_session is Empty:
            # Cleared on purpose (signed out, account gone): deleted whatever else happened.
            if connection.cookies.get(self.config.key):
                if session_id := self.cookie_session_id(connection):
                    await self.delete(session_id, store=store)
                self._expire_cookie(message)
            return
        if not isinstance(scope_session, dict):
            raise TypeError("the session must be a dict")
        if scope_session.pop(_ROTATE, False):
            await self._store_rotated(scope_session, message, connection, store)
        elif scope_session or _LOADED in connection.scope:
            await self._store_changes(scope_session, message, connection, store)
        elif connection.cookies.get(self.config.key):
            self._expire_cookie(message)  # a dead id, and nothing to keep: drop the cookie
        # else: an anonymous visitor with nothing to keep gets no entry and no cookie.

    async def _store_rotated(
        self,
        session: dict[str, Any],
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
        store: Store,
    ) -> None:
        if old_id := self.cookie_session_id(connection):
            await self.delete(old_id, store=store)
        session_id = self.generate_session_id()
        connection.scope[_ROTATED_ID] = session_id  # type: ignore[literal-required]
        await self.set(session_id, self.serialize_data(session, connection.scope), store=store)
        self._set_cookie(message, session_id)
        if user_id := session.get(USER_ID):
            from saas.login.session_directory import SessionDirectory

            await SessionDirectory.of(connection.scope["app"]).register(str(user_id), session_id)

    async def _store_changes(
        self,
        session: dict[str, Any],
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
        store: Store,
    ) -> None:
        """Write back what this request changed, onto what the store holds now.

        A browser sends requests side by side (two tabs, htmx fragments, a sign-in starting
        while the page it left still loads). Writing back the whole session as this request
        loaded it would undo what the others wrote meanwhile, such as the pending sign-in whose
        state the callback then did not find. So only this request's own changes are applied,
        atomically against other writers (`ChangeableEntries`). A session that was ended,
        rotated or expired while this request ran is not written back (that would bring it
        back to life) and its cookie is left alone (a sign-in meanwhile may have set a new one).
        """
        if not isinstance(store, ChangeableEntries):
            raise TypeError(f"the session store must be ChangeableEntries, not {type(store)}")
        loaded: bytes | None = connection.scope.get(_LOADED)  # type: ignore[assignment]
        started_from = self.deserialize_data(loaded) if loaded is not None else {}
        if loaded is not None and session == started_from:
            # This request changed nothing (most requests: `last_seen_at` moves once a second),
            # so there is nothing to write. Reading the entry renewed its lifetime already, and
            # leaving the cookie alone cannot overwrite one a sign-in meanwhile set.
            return
        session_id = self.get_session_id(connection)
        vanished = False

        def apply_changes(current: bytes | None) -> bytes | None:
            nonlocal vanished
            if current is None and loaded is not None:
                vanished = True
                return None
            # Nobody wrote meanwhile (the usual case): what was loaded is what the store holds.
            if current == loaded:
                now = started_from
            else:
                now = self.deserialize_data(current) if current is not None else {}
            merged = merge_changes(started_from, session, now)
            return self.serialize_data(merged, connection.scope) if merged else None

        max_age = int(self.config.max_age) if self.config.max_age is not None else None
        written = await store.change(session_id, apply_changes, expires_in=max_age)
        if written is not None:
            self._set_cookie(message, session_id)
        elif not vanished and connection.cookies.get(self.config.key):
            self._expire_cookie(message)  # emptied: nothing left to keep

    def _set_cookie(self, message: Message, session_id: str) -> None:
        self._add_cookie(message, session_id, max_age=self.config.max_age)

    def _expire_cookie(self, message: Message) -> None:
        # Litestar's own "cleared" cookie is `null` with the configured Max-Age, which outlives
        # its Expires: the browser kept sending a dead id for the idle timeout. Max-Age=0 (and
        # an Expires in the past) drop it now; name, path and flags must match to replace it.
        self._add_cookie(message, "", max_age=0, expires=-ONE_YEAR_SECONDS)

    def _add_cookie(
        self, message: Message, value: str, *, max_age: int | None, expires: int | None = None
    ) -> None:
        config = self.config
        cookie = Cookie(
            key=config.key,
            value=value,
            max_age=max_age,
            expires=expires,
            path=config.path,
            domain=config.domain,
            secure=config.secure,
            httponly=config.httponly,
            samesite=config.samesite,
        )
        MutableScopeHeaders.from_message(message).add("Set-Cookie", cookie.to_header(header=""))


class StoreFailureAnsweringSessionMiddleware(SessionMiddleware[RotatingSessionBackend]):
    """Litestar's session middleware, answering a failed write of the session as a 503.

    The session is written when the answer's `http.response.start` passes on its way out. By
    then Litestar counts the answer as started, so an exception raised there is handled by no
    exception handler and reached the server as its bare 500. The failed write is answered here
    instead, in place of the answer it belonged to, which is dropped: nothing of it has passed.
    """

    def create_send_wrapper(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> Callable[[Message], Awaitable[None]]:
        replaced = False

        async def wrapped_send(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the rest of the answer whose session could not be saved
            if message["type"] != "http.response.start":
                await connection.send(message)
                return
            try:
                await self.backend.store_in_message(
                    connection.scope.get("session"), message, connection
                )
            except (RedisError, StoreUnavailable) as error:
                replaced = True
                # Imported here: saas.web.errors imports the auth modules that import this one.
                from saas.web.errors import send_error_answer

                await send_error_answer(
                    connection.scope, connection.receive, connection.send, error
                )
                return
            await connection.send(message)

        return wrapped_send


class RotatingSessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend

    @property
    def middleware(self) -> DefineMiddleware:
        return DefineMiddleware(
            StoreFailureAnsweringSessionMiddleware, backend=self._backend_class(config=self)
        )


def create_session_config(settings: Settings) -> RotatingSessionConfig:
    secure = settings.secure_cookies
    return RotatingSessionConfig(
        key=session_cookie_name(settings),
        store=SESSION_STORE,
        max_age=settings.session_idle_timeout_seconds,
        renew_on_access=True,
        httponly=True,
        secure=secure,
        samesite="lax",
        path="/",
    )


def create_stores(settings: Settings) -> dict[str, Store]:
    if settings.redis_url:
        redis = CountingRedisStore.with_client(url=settings.redis_url, namespace="saas")
        return {
            SESSION_STORE: redis.with_namespace(SESSION_STORE),
            RATE_LIMIT_STORE: redis.with_namespace(RATE_LIMIT_STORE),
        }
    if settings.is_production:
        # Configuration refuses this unless ALLOW_FILE_STORES_IN_PRODUCTION says it is meant.
        logger.warning(
            "file_stores_in_production",
            reason="ALLOW_FILE_STORES_IN_PRODUCTION is set and REDIS_URL is not: sessions and "
            "the sign-in rate limit live in files of this one process; a second app process "
            "would neither see these sessions nor share the limit",
            state_dir=str(settings.state_dir),
        )
    root = settings.state_dir / "stores"
    # FileStore.with_namespace() drops create_directories, so build each store directly.
    return {
        SESSION_STORE: IndexedFileStore(root / SESSION_STORE, create_directories=True),
        RATE_LIMIT_STORE: CountingFileStore(root / RATE_LIMIT_STORE, create_directories=True),
    }


def start_authenticated_session(
    connection: ASGIConnection[Any, Any, Any, Any],
    *,
    user_id: str,
    organization_id: str | None,
    id_token: str | None = None,
    mfa: bool = False,
    auth0_sid: str | None = None,
    carry_pending: dict[str, Any] | None = None,
) -> None:
    """Replace whatever the browser had with a fresh session under a new id."""
    from saas.login.session_directory import describe_device

    now = int(time.time())
    # Sign-ins still under way in this browser's other tabs go on in the new session, but only
    # the same person's: a state planted before someone else signed in here must not survive.
    previous_user = connection.session.get(USER_ID)
    others = carry_pending if previous_user in (None, user_id) else None
    connection.set_session(
        {
            **({PENDING_LOGIN: others} if others else {}),
            USER_ID: user_id,
            ORGANIZATION_ID: organization_id,
            CREATED_AT: now,
            LAST_SEEN_AT: now,
            ID_TOKEN: id_token,
            AUTH0_SID: auth0_sid,
            DEVICE: describe_device(connection.headers.get("user-agent")),
            ADDRESS: connection.client.host if connection.client else "",
            MFA_ORGANIZATION_ID: organization_id if mfa else None,
            _ROTATE: True,
        }
    )


def id_token_hint(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The ID token this session began with, for the provider's end-session endpoint."""
    value = connection.session.get(ID_TOKEN)
    return value if isinstance(value, str) and value else None


def session_expired(session: dict[str, Any], settings: Settings, now: float) -> bool:
    created = session.get(CREATED_AT)
    seen = session.get(LAST_SEEN_AT, created)
    if not isinstance(created, int | float) or not isinstance(seen, int | float):
        return False
    return (
        now - created > settings.session_absolute_timeout_seconds
        or now - seen > settings.session_idle_timeout_seconds
    )


def session_past(
    connection: ASGIConnection[Any, Any, Any, Any], idle: int, absolute: int, now: float
) -> bool:
    """Whether this request's session is older than `absolute` seconds, or was idle longer
    than `idle` before this request (an organization's own timeouts)."""
    created = connection.session.get(CREATED_AT)
    seen = connection.scope.get(PREVIOUS_SEEN, created)
    if not isinstance(created, int | float):
        return False
    if not isinstance(seen, int | float):
        seen = created
    return now - created > absolute or now - seen > idle


def session_timeout_middleware_factory(settings: Settings) -> Any:
    """Expire sessions past their idle or absolute deadline; refresh `last_seen_at` otherwise.

    Runs inside the session middleware, so `scope["session"]` is loaded and written back.
    """

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            session = scope.get("session")
            if scope["type"] == "http" and isinstance(session, dict) and session.get(USER_ID):
                now = time.time()
                if session_expired(session, settings, now):
                    scope["session"] = {}
                else:
                    # For the organization's own, shorter idle timeout (saas.tenancy.resolver).
                    scope[PREVIOUS_SEEN] = session.get(LAST_SEEN_AT)  # type: ignore[literal-required]
                    session[LAST_SEEN_AT] = int(now)
            await app(scope, receive, send)

        return middleware

    return factory
