"""Structured logging: one line per request, with a request id that follows the request.

JSON in production (for log shippers), readable console lines in development, coloured only
when stdout is a terminal (and `NO_COLOR` is not set): piped into a file or a CI log, ANSI
escape codes are noise. Query strings
are never logged: on /callback they carry authorization codes and state.

The request id is always the app's own: a client (or a proxy) can send any `X-Request-ID`, and
one it chose could be made equal to another request's to blur what the log says about each.
A well-formed one it sent is logged beside it as `client_request_id`, for correlation with the
proxy's logs. The path is logged as it was received, before Litestar normalises it
(`//o/acme/` is routed as `/o/acme`), so the log shows what the client asked for.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from typing import TYPE_CHECKING

import structlog
from litestar.logging.config import StructLoggingConfig, default_structlog_processors

from saas.config import Settings

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
access_log = structlog.get_logger("saas.access")


def colours_wanted() -> bool:
    """ANSI colours for the console log: only on a terminal, and never with NO_COLOR set
    (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _processors(settings: Settings) -> list[structlog.typing.Processor]:
    processors = default_structlog_processors(as_json=settings.is_production)
    if settings.is_production:
        return processors
    colours = colours_wanted()
    # On a terminal, Litestar's own choice of traceback (one frame, no locals: a full rich
    # traceback with locals takes seconds to render). Into a pipe or a file, the plain one:
    # every frame, greppable, and no syntax highlighting for nobody to see.
    formatter: structlog.typing.ExceptionRenderer = (
        structlog.dev.RichTracebackFormatter(
            max_frames=1, show_locals=False, width=80, color_system="auto"
        )
        if colours
        else structlog.dev.plain_traceback
    )
    return [
        structlog.dev.ConsoleRenderer(colors=colours, exception_formatter=formatter)
        if isinstance(processor, structlog.dev.ConsoleRenderer)
        else processor
        for processor in processors
    ]


def create_logging_config(settings: Settings) -> StructLoggingConfig:
    return StructLoggingConfig(
        processors=_processors(settings),
        # The JSON renderer emits bytes, the console renderer text: each needs its own logger.
        logger_factory=(
            structlog.BytesLoggerFactory()
            if settings.is_production
            else structlog.WriteLoggerFactory()
        ),
        # Expected HTTP errors are not worth a traceback; web.errors logs the unexpected ones.
        log_exceptions="never",
        pretty_print_tty=not settings.is_production,
        # LOG_LEVEL: INFO writes a line per request; `saas dev` runs the app at WARNING.
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level]
        ),
    )


def _client_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            # fullmatch: `$` would also match before a trailing newline.
            return candidate if _SAFE_REQUEST_ID.fullmatch(candidate) else None
    return None


def _path_as_received(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes):
        return str(scope["path"])
    # Some servers leave the query in: it never reaches the log (see above). Bytes outside
    # printable ASCII are shown percent-encoded, so a log line holds only what it seems to.
    raw = raw.partition(b"?")[0]
    return "".join(chr(byte) if 0x21 <= byte <= 0x7E else f"%{byte:02X}" for byte in raw)


def access_log_middleware(app: ASGIApp) -> ASGIApp:
    """Wraps the whole application (see `saas.app.Application`): a middleware in Litestar's
    route stack would miss the router's answers and those made for exceptions raised around it."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if client_request_id := _client_request_id(scope):
            structlog.contextvars.bind_contextvars(client_request_id=client_request_id)
        # Read now: Litestar replaces scope["path"] with the normalised path it routes.
        path = _path_as_received(scope)
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
                path=path,
                status=status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()

    return middleware
