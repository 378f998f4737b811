"""Request-body validation and pagination in the Management API's style."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, TypeVar

from litestar import Request

from saas.devidp.errors import ManagementError

T = TypeVar("T")

# An address as the app accepts one (saas/organizations/domains.py): a dot-atom local part of
# letters, digits and RFC 5322 symbols, and a dotted domain with no spaces or control
# characters. Used with fullmatch (a `$` would let a trailing newline through). Laxer than the
# app here would let a bug in the app's validation reach the mailbox unnoticed.
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")
# Auth0's largest page, and the first records offset pagination (page/per_page) reaches:
# beyond them Auth0 answers 400 invalid_paging, "Requesting page 10 exceeds the allowed maximum
# of 1000 records. To fetch results beyond 1000, use the checkpoint pagination method."
# (auth0/docs articles/organizations/configure-membership.md; auth0/auth0-python#277), and a
# larger per_page is "Query validation error: 'Value 1000 is greater than maximum 100' on
# property per_page (Number of results per page. Defaults to 50)." (auth0/node-auth0#648).
MAX_PER_PAGE = 100
PAGING_WINDOW = 1000
DEFAULT_TAKE = 50
_PARAMETER_HELP = {
    "page": "Page index of the results to return. First page is 0.",
    "per_page": "Number of results per page. Defaults to 50.",
    "take": "Number of results per page. Defaults to 50.",
}


def bad_body(message: str) -> ManagementError:
    return ManagementError(400, f"Payload validation error: {message}", "invalid_body")


def bad_query(message: str) -> ManagementError:
    return ManagementError(400, f"Query validation error: {message}", "invalid_query_string")


def not_found(message: str, code: str) -> ManagementError:
    return ManagementError(404, message, code)


async def json_object(
    request: Request[Any, Any, Any],
    *,
    allowed: AbstractSet[str],
    required: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON body, refusing unknown properties and missing required ones, as Auth0 does."""
    try:
        body = await request.json()
    except Exception:
        raise bad_body("'Invalid JSON'") from None
    if not isinstance(body, dict):
        raise bad_body("'Expected type object but found type " + type(body).__name__ + "'")
    extra = sorted(set(body) - allowed)
    if extra:
        raise bad_body(f"'Additional properties not allowed: {','.join(extra)}'")
    for name in required:
        if name not in body:
            raise bad_body(f"'Missing required property: {name}'")
    return body


def expect(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    # bool is an int in Python; JSON booleans must not pass as integers.
    if isinstance(value, bool) and kind in (int, (int,)):
        raise bad_body(f"'Expected type integer but found type boolean' on property {name}")
    if not isinstance(value, kind):
        raise bad_body(f"'Invalid type' on property {name}")
    return value


def string_list(body: dict[str, Any], name: str, *, min_items: int, max_items: int) -> list[str]:
    value = body.get(name)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad_body(f"'Expected type array of strings' on property {name}")
    if len(value) < min_items:
        raise bad_body(
            f"'Array is too short ({len(value)}), minimum {min_items}' on property {name}"
        )
    if len(value) > max_items:
        raise bad_body(
            f"'Array is too long ({len(value)}), maximum {max_items}' on property {name}"
        )
    return list(dict.fromkeys(value))


def _int(query: Any, name: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_query(f"Expected type integer on parameter {name}") from None
    where = f"on property {name} ({_PARAMETER_HELP.get(name, name)})"
    if value < low:
        raise bad_query(f"'Value {value} is less than minimum {low}' {where}")
    if high is not None and value > high:
        raise bad_query(f"'Value {value} is greater than maximum {high}' {where}")
    return value


def _bool(query: Any, name: str) -> bool:
    return str(query.get(name, "false")).lower() == "true"


def offset_page(
    query: Any,
    items: list[T],
    key: str,
    render: Callable[[T], Any],
    *,
    checkpoint: bool = False,
) -> Any:
    """``page``/``per_page``/``include_totals``: an array, or ``{key, start, limit, total}``.
    A page reaching past the first 1,000 records is refused whatever the list holds, as Auth0
    does; `checkpoint` says the endpoint also pages with ``from``/``take``."""
    page = _int(query, "page", 0, 0, None)
    per_page = _int(query, "per_page", 50, 1, MAX_PER_PAGE)
    if (page + 1) * per_page > PAGING_WINDOW:
        hint = (
            " To fetch results beyond 1000, use the checkpoint pagination method."
            if checkpoint
            else ""
        )
        raise ManagementError(
            400,
            f"Requesting page {page} exceeds the allowed maximum of {PAGING_WINDOW} records."
            + hint,
            "invalid_paging",
        )
    chunk = [render(i) for i in items[page * per_page : (page + 1) * per_page]]
    if _bool(query, "include_totals"):
        return {key: chunk, "start": page * per_page, "limit": per_page, "total": len(items)}
    return chunk


def uses_checkpoint(query: Any) -> bool:
    return "from" in query or "take" in query


def checkpoint_page(
    query: Any, items: list[T], key: str, ident: Callable[[T], str], render: Callable[[T], Any]
) -> dict[str, Any]:
    """``from``/``take`` checkpoint pagination: ``{key: [...], next?}`` with an opaque cursor."""
    take = _int(query, "take", DEFAULT_TAKE, 1, MAX_PER_PAGE)
    cursor = query.get("from")
    start = 0
    if cursor:
        try:
            after = base64.urlsafe_b64decode(cursor.encode() + b"==").decode()
        except (ValueError, UnicodeDecodeError):
            raise bad_query("from is not a valid checkpoint") from None
        start = next((i + 1 for i, item in enumerate(items) if ident(item) == after), None) or 0
        if start == 0:
            # Position after the cursor even if that item was deleted meanwhile.
            start = sum(1 for item in items if ident(item) <= after)
    chunk = items[start : start + take]
    result: dict[str, Any] = {key: [render(i) for i in chunk]}
    if start + take < len(items):
        result["next"] = base64.urlsafe_b64encode(ident(chunk[-1]).encode()).decode().rstrip("=")
    return result
