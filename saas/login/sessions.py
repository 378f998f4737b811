"""Server-side sessions: only an opaque id in the cookie, everything else in the store.

- Redis when REDIS_URL is set (any number of app processes share it), a file store otherwise
  (one process only; expired files are swept by `saas.stores.sweep_expired_entries`).
- Cookie: HttpOnly, SameSite=Lax; Secure and the `__Host-` prefix outside development.
- The id is rotated at login (no session fixation) and the data carries its own idle and
  absolute deadlines, checked on every request.
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
from saas.stores import CountingFileStore, CountingRedisStore, IndexedFileStore, StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from litestar.types import ASGIApp, Message, Receive, Scope, ScopeSession, Send

logger = structlog.get_logger("saas.sessions")

SESSION_STORE = "sessions"
RATE_LIMIT_STORE = "ratelimit"
_ROTATE = "_rotate"
_ROTATED_ID = "saas.rotated_session_id"
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
# Set when the session loaded held a signed-in user (saas.login.session_directory can end it).
_LOADED_SIGNED_IN = "saas.loaded_signed_in"

ONE_YEAR_SECONDS = 365 * 24 * 3600


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
        if data.get(USER_ID):
            connection.scope[_LOADED_SIGNED_IN] = True  # type: ignore[literal-required]
        return data

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        rotated = connection.scope.get(_ROTATED_ID)
        if rotated:
            return str(rotated)
        if sent := self.cookie_session_id(connection):
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
        if not scope_session or scope_session is Empty:
            # Anonymous visitors get no store entry and no cookie; a cleared session is deleted.
            if connection.cookies.get(self.config.key):
                if session_id := self.cookie_session_id(connection):
                    await self.delete(
                        session_id, store=self.config.get_store_from_app(connection.scope["app"])
                    )
                self._expire_cookie(message)
            return
        store = self.config.get_store_from_app(connection.scope["app"])
        rotating = isinstance(scope_session, dict) and scope_session.pop(_ROTATE, False)
        if rotating:
            old_id = self.cookie_session_id(connection)
            if old_id:
                await self.delete(old_id, store=store)
            connection.scope[_ROTATED_ID] = self.generate_session_id()  # type: ignore[literal-required]
        elif connection.scope.get(_LOADED_SIGNED_IN):
            session_id = self.cookie_session_id(connection)
            if session_id and not await store.exists(session_id):
                # Ended while this request ran: writing it back would bring it back to life.
                self._expire_cookie(message)
                return
        await super().store_in_message(scope_session, message, connection)
        user_id = scope_session.get(USER_ID) if isinstance(scope_session, dict) else None
        if rotating and user_id:
            from saas.login.session_directory import SessionDirectory

            await SessionDirectory.of(connection.scope["app"]).register(
                str(user_id), self.get_session_id(connection)
            )

    def _expire_cookie(self, message: Message) -> None:
        # Litestar's own "cleared" cookie is `null` with the configured Max-Age, which outlives
        # its Expires: the browser kept sending a dead id for the idle timeout. Max-Age=0 (and
        # an Expires in the past) drop it now; name, path and flags must match to replace it.
        config = self.config
        cookie = Cookie(
            key=config.key,
            value="",
            max_age=0,
            expires=-ONE_YEAR_SECONDS,
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
) -> None:
    """Replace whatever the browser had with a fresh session under a new id."""
    from saas.login.session_directory import describe_device

    now = int(time.time())
    connection.set_session(
        {
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
