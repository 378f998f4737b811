"""What the app accepts as text from a request, decided once for every route.

Control characters (C0, DEL and C1; NUL above all) have no business in names, addresses,
searches, cursors or slugs. PostgreSQL cannot store NUL in text at all (the driver raises, and
the request ended in a 500), while SQLite stores it and hands it on to Auth0, mail and logs.
So they are refused where text enters:

- the path and the query string of every request, by `refuse_control_characters`, an app-level
  guard: it runs before any other guard, so before the tenant is looked up by its slug;
- every string field of a request body, by declaring it `SingleLine` or `MultiLine` (msgspec
  enforces the pattern, and the OpenAPI document states it);
- JSON bodies that are not UTF-8, by `AppRequest`: msgspec raises `UnicodeDecodeError` for
  them, which Litestar does not turn into a 400.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import ClientException, SerializationException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.plugins.htmx import HTMXRequest
from msgspec import Meta

from saas.web.errors import handle_http_exception

# Python's `$` also matches before a final newline, so "end of input" is the lookahead
# `(?![\s\S])`, which means the same in ECMA-262 (the OpenAPI dialect) and in `re`.
SINGLE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*(?![\s\S])"
# Text areas (address lists, SAML metadata, certificates) keep tab, line feed, carriage return.
MULTI_LINE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*(?![\s\S])"

SingleLine = Annotated[
    str,
    Meta(
        pattern=SINGLE_LINE_PATTERN,
        description="Text without control characters (no NUL, tab or line break).",
    ),
]
MultiLine = Annotated[
    str,
    Meta(
        pattern=MULTI_LINE_PATTERN,
        description="Text without control characters other than tab and line breaks.",
    ),
]

# msgspec names the pattern a value failed; people are told what the pattern means.
_EXPLANATIONS = {
    f"Expected `str` matching regex {SINGLE_LINE_PATTERN!r}": (
        "must not contain control characters (such as NUL, a tab or a line break)"
    ),
    f"Expected `str` matching regex {MULTI_LINE_PATTERN!r}": (
        "must not contain control characters (such as NUL)"
    ),
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control_characters(value: str) -> bool:
    return _CONTROL.search(value) is not None


def _query_problem(query_string: bytes) -> str | None:
    for pair in query_string.split(b"&"):
        key, _, value = pair.partition(b"=")
        try:
            name = unquote_to_bytes(key.replace(b"+", b" ")).decode()
            text = unquote_to_bytes(value.replace(b"+", b" ")).decode()
        except UnicodeDecodeError:
            return "The query string is not valid UTF-8."
        if has_control_characters(name):
            return "A query parameter's name contains a control character."
        if has_control_characters(text):
            # Name the parameter, never echo its value.
            return f"The query parameter `{name[:64]}` contains a control character (such as NUL)."
    return None


async def refuse_control_characters(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """400 for a path or query string with control characters or bytes that are not UTF-8."""
    if has_control_characters(connection.scope["path"]):
        raise ClientException("The address contains a control character (such as NUL).")
    problem = _query_problem(connection.scope.get("query_string", b""))
    if problem is not None:
        raise ClientException(problem)


class AppRequest(HTMXRequest):
    """The request class of every route (htmx-aware, as the HTMX plugin would install)."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except UnicodeDecodeError as error:
            # Litestar answers SerializationException with a 400, as for any malformed JSON.
            raise SerializationException("The request body is not valid UTF-8.") from error


def handle_validation_exception(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[Any]:
    """The usual problem or error page, with the text rule's failures said in words."""
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict) and item.get("message") in _EXPLANATIONS:
            item["message"] = _EXPLANATIONS[item["message"]]
    return handle_http_exception(request, exc)
