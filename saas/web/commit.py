"""Each request's writes are committed before its answer leaves, and a failed commit is the
answer.

Advanced Alchemy's autocommit handler commits in a before-send hook, where the answer is
already decided: when the COMMIT fails it logs at debug level and sends the 2xx or 3xx anyway,
a success with nothing written. Here the commit happens as the answer's `http.response.start`
comes out of the route, before anything of it has passed on; when the commit fails, that answer
is dropped and the failure is answered instead, by its exception handler (a conflict is the 409
any other conflict gets, anything else a 500). Advanced Alchemy's default hook then only closes
the session, which rolls back whatever was not committed.

Success is a 2xx or a 3xx: a sign-in ends in a redirect and must keep its writes. Every other
status, and every answer made for an exception, commits nothing.

A dropped answer's flash messages go with it: a plain form post says what it did on the page
its redirect lands on, and must not say so for a write that was not committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

# The accessor Advanced Alchemy's own before-send handlers use to find the request's session.
from advanced_alchemy.extensions.litestar._utils import get_aa_scope_state

from saas.auth0.outbox import wake_after_commit
from saas.login.session_ending import end_committed_sessions, forget_pending
from saas.web.errors import send_error_answer

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send
    from sqlalchemy.ext.asyncio import AsyncSession

logger = structlog.get_logger("saas.db")
# Where Litestar's `flash()` (litestar.plugins.flash) keeps the messages, in the session.
FLASH_SESSION_KEY = "_messages"


def _is_success(status: int) -> bool:
    return 200 <= status < 400


def _flashes(scope: Scope) -> list[object] | None:
    session = scope.get("session")
    messages = session.get(FLASH_SESSION_KEY) if isinstance(session, dict) else None
    return messages if isinstance(messages, list) else None


def commit_before_answer_middleware_factory(
    session_scope_key: str,
) -> Callable[[ASGIApp], ASGIApp]:
    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            replaced = False
            # Messages from earlier requests, not shown yet, stay whatever happens here.
            flashed_before = len(_flashes(scope) or ())

            async def send_after_commit(message: Message) -> None:
                nonlocal replaced
                if replaced:
                    return  # the rest of the answer whose writes were not committed
                if message["type"] == "http.response.start" and _is_success(message["status"]):
                    session: AsyncSession | None = get_aa_scope_state(scope, session_scope_key)
                    if session is not None:
                        try:
                            await session.commit()
                        except Exception as error:
                            replaced = True
                            logger.warning(
                                "commit_failed", path=scope["path"], error=type(error).__name__
                            )
                            with contextlib.suppress(Exception):
                                await session.rollback()
                            if (flashed := _flashes(scope)) is not None:
                                del flashed[flashed_before:]
                            forget_pending(session)
                            await send_error_answer(scope, receive, send, error)
                            return
                        # Sessions the committed change ended (a removed member's): gone
                        # before the answer says it is done.
                        await end_committed_sessions(session, scope["app"])
                        # Jobs it added run now (a revoked Auth0 session among them).
                        wake_after_commit(session, scope["app"].state)
                await send(message)

            await app(scope, receive, send_after_commit)

        return middleware

    return factory
