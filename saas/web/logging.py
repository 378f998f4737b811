"""Structured logging: one line per request, with a request id that follows the request.

JSON in production (for log shippers), readable console lines in development. Query strings
are never logged: on /callback they carry authorization codes and state.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING

import structlog
from litestar.logging.config import StructLoggingConfig, default_structlog_processors

from saas.config import Settings

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access_log = structlog.get_logger("saas.access")


def create_logging_config(settings: Settings) -> StructLoggingConfig:
    return StructLoggingConfig(
        processors=default_structlog_processors(as_json=settings.is_production),
        # The JSON renderer emits bytes, the console renderer text: each needs its own logger.
        logger_factory=(
            structlog.BytesLoggerFactory()
            if settings.is_production
            else structlog.WriteLoggerFactory()
        ),
        # Expected HTTP errors are not worth a traceback; web.errors logs the unexpected ones.
        log_exceptions="never",
        pretty_print_tty=not settings.is_production,
    )


def _request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


def access_log_middleware(app: ASGIApp) -> ASGIApp:
    """Wraps the whole application (see `saas.app.Application`): a middleware in Litestar's
    route stack would miss the router's answers and those made for exceptions raised around it."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = _request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status_code = 500
        started = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] != "http.response.start":
                await send(message)
                return
            headers = list(message.get("headers", []))
            headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
            message["headers"] = headers
            await send(message)
            # Recorded once the server took it: one it refuses is answered with its own 500.
            status_code = message["status"]

        try:
            await app(scope, receive, send_with_request_id)
        finally:
            access_log.info(
                "request",
                method=scope.get("method"),
                path=scope["path"],
                status=status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()

    return middleware
