"""`Server-Timing: sql;desc="N statements"` on every response, outside production.

Developers see it in the browser's network panel, and tests hold pages to a fixed number of
statements over real HTTP with it. Production leaves it out: it would tell outsiders how much
database work each URL costs.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

# One counter per request. SQLAlchemy runs the driver in a greenlet that shares the request's
# context, so the engine event below sees the counter of the request that issued the statement.
_statements: ContextVar[list[int] | None] = ContextVar("sql_statements", default=None)


def _count(*_: Any) -> None:
    counter = _statements.get()
    if counter is not None:
        counter[0] += 1


def count_statements_of(engine: AsyncEngine) -> None:
    event.listen(engine.sync_engine, "before_cursor_execute", _count)


def sql_timing_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        counter = [0]
        token = _statements.set(counter)

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start":
                timing = f'sql;desc="{counter[0]} statements"'.encode()
                message["headers"] = [*message.get("headers", []), (b"server-timing", timing)]
            await send(message)

        try:
            await app(scope, receive, send_with_timing)
        finally:
            _statements.reset(token)

    return middleware
