"""One place that turns every failure into a clear answer.

JSON API routes (and clients that ask for JSON) get RFC 9457 problem details; browsers get an
error page. Unexpected exceptions become a 500 with no internals shown, and are logged.
"""

from __future__ import annotations

from http import HTTPStatus
from inspect import getmro
from typing import TYPE_CHECKING, Any

import structlog
from advanced_alchemy.exceptions import IntegrityError as AdvancedAlchemyIntegrityError
from advanced_alchemy.exceptions import NotFoundError, RepositoryError
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Redirect, Template
from litestar.response.base import ASGIResponse
from litestar.status_codes import HTTP_204_NO_CONTENT, HTTP_500_INTERNAL_SERVER_ERROR
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, NoResultFound
from sqlalchemy.exc import IntegrityError as SQLAlchemyIntegrityError
from sqlalchemy.orm.exc import StaleDataError

from saas.errors import DomainError
from saas.login.errors import LoginRefused
from saas.login.provider import ProviderUnavailable
from saas.stores import StoreUnavailable
from saas.tenancy.context import SignInRequired
from saas.tenancy.routers import API_OPT
from saas.web.htmx import client_redirect, is_fragment

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar.types import Receive, Scope, Send

logger = structlog.get_logger("saas.errors")
PROBLEM_JSON = "application/problem+json"
# The SCIM service provider (saas/scim/controllers.py) answers every refusal as a SCIM error
# (RFC 7644 §3.12): its router's `opt` says so, and below its prefix so does a path no route
# matched.
SCIM_OPT = "scim"
SCIM_PREFIX = "/scim/"
SCIM_MEDIA_TYPE = "application/scim+json"
SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
# Where the refusal's scimType and detail are kept for the SCIM router's error record.
SCIM_ERROR_STATE = "saas.scim.error"

_TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Invalid input",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Service unavailable",
}


# Litestar's own exceptions carry the bare reason phrase as their detail ("Not Found"); a page
# that says "Not found / Not Found" tells nobody anything, so these say what to do instead.
_PLAIN_DETAILS = {
    400: "The request could not be understood. Go back and try again.",
    403: "You do not have access to this.",
    404: "There is nothing at this address. Check the link, or start again from the home page.",
    405: "This address does not accept that kind of request.",
}
# Litestar's CSRF middleware refuses with this detail. A person meets it when the page they
# act from was loaded before they signed in or out (in this tab or another one).
_CSRF_REFUSAL = "CSRF token verification failed"
_CSRF_EXPLANATION = (
    "This page is out of date: you signed in or out since it was loaded, perhaps in another "
    "tab. Reload the page and try again. Nothing was changed."
)


def is_api(request: Request[Any, Any, Any]) -> bool:
    """Whether the API router answers: its `opt` says so. A path no route matched has no
    router to ask, so there the API's prefix decides (a JSON client gets JSON for a typo)."""
    handler = request.scope.get("route_handler")
    if handler is not None:
        return bool(handler.opt.get(API_OPT))
    return request.url.path.startswith("/api/")


def is_scim(request: Request[Any, Any, Any]) -> bool:
    handler = request.scope.get("route_handler")
    if handler is not None and handler.opt.get(SCIM_OPT):
        return True
    return request.url.path.startswith(SCIM_PREFIX)


def scim_error_response(
    request: Request[Any, Any, Any],
    status_code: int,
    detail: str,
    *,
    scim_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    body: dict[str, Any] = {
        "schemas": [SCIM_ERROR_SCHEMA],
        "status": str(status_code),
        "detail": detail,
    }
    if scim_type:
        body["scimType"] = scim_type
    request.state[SCIM_ERROR_STATE] = (scim_type, detail)
    return Response(body, status_code=status_code, media_type=SCIM_MEDIA_TYPE, headers=headers)


def wants_json(request: Request[Any, Any, Any]) -> bool:
    if is_api(request):
        return True
    accept = request.headers.get("accept", "")
    return "json" in accept and "text/html" not in accept


def error_response(
    request: Request[Any, Any, Any],
    status_code: int,
    detail: str,
    *,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    offer_sign_out: bool = False,
) -> Response[Any]:
    title = title or _TITLES.get(status_code, "Error")
    if is_scim(request):
        return scim_error_response(request, status_code, detail, headers=headers)
    if wants_json(request):
        problem: dict[str, Any] = {
            "type": "about:blank",
            "title": title,
            "status": status_code,
            "detail": detail,
            "instance": request.url.path,
        }
        problem.update(extra or {})
        return Response(problem, status_code=status_code, media_type=PROBLEM_JSON, headers=headers)
    return Template(
        template_name="pages/error.html",
        context={
            "status_code": status_code,
            "title": title,
            "detail": detail,
            "offer_sign_out": offer_sign_out,
        },
        status_code=status_code,
        headers=headers,
        media_type=MediaType.HTML,
    )


def handle_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    extra: dict[str, Any] = {}
    if exc.field:
        extra["field"] = exc.field
    if exc.code:
        extra["code"] = exc.code
    return error_response(request, exc.status_code, exc.detail, title=exc.title, extra=extra)


def handle_login_refused(request: Request[Any, Any, Any], exc: LoginRefused) -> Response[Any]:
    # The reason goes to the log; tokens, codes and claims never do.
    logger.warning("login_refused", reason=exc.reason, cause=type(exc.__cause__).__name__)
    return error_response(
        request,
        exc.status_code,
        exc.detail,
        title=exc.title,
        extra={"reason": exc.reason},
        offer_sign_out=exc.offer_sign_out,
    )


def handle_provider_unavailable(
    request: Request[Any, Any, Any], exc: ProviderUnavailable
) -> Response[Any]:
    logger.error("identity_provider_unavailable", error=str(exc))
    return error_response(
        request,
        503,
        "The sign-in service is not reachable right now. Please try again in a minute.",
        title="Sign-in is temporarily unavailable",
    )


STORE_UNAVAILABLE_TITLE = "Temporarily unavailable"
STORE_UNAVAILABLE_DETAIL = (
    "Sign-in and sessions are not reachable right now. Please try again in a minute."
)
UNEXPECTED_DETAIL = "An unexpected error occurred. It has been logged; please try again."


def handle_store_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Sessions and sign-in rate limits live in Redis when REDIS_URL is set, in files otherwise:
    # a store that cannot be reached, or that refuses writes (Redis out of memory or a read-only
    # replica, a full disk), cannot serve the request, and the person should know that it is
    # not their doing.
    logger.error("session_store_unavailable", error=type(exc).__name__, detail=str(exc)[:200])
    return error_response(request, 503, STORE_UNAVAILABLE_DETAIL, title=STORE_UNAVAILABLE_TITLE)


def handle_sign_in_required(request: Request[Any, Any, Any], exc: SignInRequired) -> Response[Any]:
    if wants_json(request):
        challenge = 'Bearer realm="api"'
        if exc.detail.startswith("The access token is not valid"):
            challenge += ', error="invalid_token"'
        return error_response(request, 401, exc.detail, headers={"WWW-Authenticate": challenge})
    if is_fragment(request):
        # htmx follows HX-Redirect with a full page load instead of swapping a login page in;
        # 204, so that nothing would be swapped even where it did not.
        return client_redirect(exc.location, HTTP_204_NO_CONTENT)
    return Redirect(path=exc.location, status_code=303)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    extra: dict[str, Any] | None = None
    detail = exc.detail
    if isinstance(exc, ValidationException):
        # Litestar's messages name the parameter and the problem; never echo raw values back.
        errors = [
            {"key": item.get("key"), "message": item.get("message")}
            for item in (exc.extra if isinstance(exc.extra, list) else [])
            if isinstance(item, dict)
        ]
        extra = {"errors": errors}
        detail = (
            "The request was not valid: "
            + "; ".join(
                f"{e['key']}: {e['message']}" if e["key"] else str(e["message"]) for e in errors
            )
            if errors
            else "The request was not valid."
        )
    status_code = exc.status_code
    title: str | None = None
    if detail == _CSRF_REFUSAL:
        title, detail = "Page out of date", _CSRF_EXPLANATION
    elif detail.casefold() == HTTPStatus(status_code).phrase.casefold():
        detail = _PLAIN_DETAILS.get(status_code, detail)
    if isinstance(exc, ValidationException) and is_api(request):
        status_code = 422  # well-formed HTTP, unacceptable content: the API's documented code
    if status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        detail = "An unexpected error occurred. It has been logged."
    return error_response(
        request, status_code, detail, title=title, extra=extra, headers=exc.headers
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.exception("unhandled_exception", path=request.url.path, exc_type=type(exc).__name__)
    return error_response(request, HTTP_500_INTERNAL_SERVER_ERROR, UNEXPECTED_DETAIL)


# ---- The database's own refusals: races on unique values, rows removed meanwhile ---------
# A service checks first ("is this slug free?") for a clear message; a concurrent request can
# still win between that check and the write, and then the database refuses. Where a service
# has a better answer it gives it at the source (saas/db/unique.py, the sign-in's user upsert);
# everywhere else these give a 409 or 404, never a 500, and never the database's own message,
# which names constraints and values.

DATABASE_CONFLICT_DETAIL = (
    "This conflicts with a change made at the same time: a value that must be unique is "
    "taken now, or something it refers to is gone. Reload the page and try again."
)
DATABASE_GONE_DETAIL = (
    "What this request refers to no longer exists; it was probably removed at the same "
    "time. Reload the page."
)


def _is_row_gone(exc: BaseException) -> bool:
    # StaleDataError: an UPDATE or DELETE by primary key matched no row (there are no version
    # counters in this schema, so the row is gone); NoResultFound: `session.get_one`.
    return isinstance(exc, StaleDataError | NoResultFound | NotFoundError)


# Only these are what a concurrent request leaves behind: a unique value taken meanwhile, a
# referenced row deleted meanwhile. NOT NULL and CHECK violations are the code's own bugs.
_CONFLICT_SQLSTATES = frozenset({"23505", "23503"})  # unique_violation, foreign_key_violation
_CONFLICT_SQLITE_CODES = frozenset(
    {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_FOREIGNKEY"}
)


def _database_code(orig: BaseException | None) -> str | None:
    """The database's own name for an error: asyncpg's SQLSTATE (through SQLAlchemy's
    adapter), or SQLite's extended error name (Python 3.11+); None when neither says."""
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    return str(code) if code else None


def _is_one_of(
    orig: BaseException | None, codes: frozenset[str], messages: tuple[str, ...]
) -> bool:
    code = _database_code(orig)
    if code is not None:
        return code in codes
    return str(orig).startswith(messages)  # a driver that names no code


def _is_conflict(orig: BaseException | None) -> bool:
    return _is_one_of(
        orig,
        _CONFLICT_SQLSTATES | _CONFLICT_SQLITE_CODES,
        ("UNIQUE constraint failed", "FOREIGN KEY constraint failed"),
    )


def handle_database_conflict(
    request: Request[Any, Any, Any], exc: SQLAlchemyIntegrityError
) -> Response[Any]:
    if not _is_conflict(exc.orig):
        return handle_unexpected(request, exc)
    logger.warning(
        "database_conflict", path=request.url.path, constraint=_constraint_name(exc.orig)
    )
    return error_response(request, 409, DATABASE_CONFLICT_DETAIL)


# What two transactions contending for the same rows leave behind: PostgreSQL chose this one
# to end (a deadlock, a serializable conflict, a lock not had in time), or SQLite stayed
# locked by another writer past its busy timeout. The transaction was rolled back whole;
# trying again is the answer, so it is a 503 with Retry-After, not a 500.
_CONTENTION_SQLSTATES = frozenset({"40P01", "40001", "55P03"})
_CONTENTION_SQLITE_CODES = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_BUSY_SNAPSHOT"})
DATABASE_BUSY_DETAIL = (
    "The database was busy with changes made at the same time, and nothing of this request "
    "was saved. Try again in a moment."
)
DATABASE_BUSY_RETRY_SECONDS = 1


def handle_database_error(request: Request[Any, Any, Any], exc: DBAPIError) -> Response[Any]:
    if not _is_one_of(
        exc.orig, _CONTENTION_SQLSTATES | _CONTENTION_SQLITE_CODES, ("database is locked",)
    ):
        return handle_unexpected(request, exc)
    code = _database_code(exc.orig)
    if code == "40P01":
        # A deadlock is usually two code paths taking the same locks in different orders:
        # worth the traceback, so that a retried one does not go unnoticed.
        logger.error("database_deadlock", path=request.url.path, exc_info=exc)
    else:
        logger.warning("database_contention", path=request.url.path, code=code)
    return error_response(
        request,
        503,
        DATABASE_BUSY_DETAIL,
        headers={"Retry-After": str(DATABASE_BUSY_RETRY_SECONDS)},
    )


def handle_row_gone(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.info("database_row_gone", path=request.url.path, exc_type=type(exc).__name__)
    return error_response(request, 404, DATABASE_GONE_DETAIL)


def handle_repository_error(request: Request[Any, Any, Any], exc: RepositoryError) -> Response[Any]:
    """Advanced Alchemy wraps SQLAlchemy's errors; decide by what it wrapped. Its IntegrityError
    also wraps errors that are not conflicts (a value the column cannot hold): those stay
    unexpected, logged, 500."""
    cause = exc.__cause__
    if _is_row_gone(exc) or (cause is not None and _is_row_gone(cause)):
        return handle_row_gone(request, exc)
    if isinstance(exc, AdvancedAlchemyIntegrityError) and isinstance(
        cause, SQLAlchemyIntegrityError
    ):
        return handle_database_conflict(request, cause)
    if isinstance(cause, DBAPIError):
        return handle_database_error(request, cause)
    return handle_unexpected(request, exc)


def _constraint_name(orig: BaseException | None) -> str | None:
    # asyncpg names the constraint; SQLite says only "UNIQUE constraint failed: <columns>".
    name = getattr(orig, "constraint_name", None) or getattr(
        getattr(orig, "__cause__", None), "constraint_name", None
    )
    return str(name) if name else None


EXCEPTION_HANDLERS = {
    LoginRefused: handle_login_refused,
    SignInRequired: handle_sign_in_required,
    ProviderUnavailable: handle_provider_unavailable,
    DomainError: handle_domain_error,
    RedisError: handle_store_unavailable,
    StoreUnavailable: handle_store_unavailable,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
    # The database's own refusals (see above).
    RepositoryError: handle_repository_error,
    SQLAlchemyIntegrityError: handle_database_conflict,
    DBAPIError: handle_database_error,
    StaleDataError: handle_row_gone,
    NoResultFound: handle_row_gone,
}


def handler_for(exc: BaseException) -> Callable[[Request[Any, Any, Any], Any], Response[Any]]:
    """The handler Litestar would pick for `exc` from EXCEPTION_HANDLERS (closest class first)."""
    for cls in getmro(type(exc)):
        if cls in EXCEPTION_HANDLERS:
            return EXCEPTION_HANDLERS[cls]  # type: ignore[return-value]
    return handle_unexpected


async def send_error_answer(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answer `exc` as its exception handler would, from a layer that met it while the answer
    it replaces was leaving: Litestar counts that answer as started and would not handle it.
    Only for layers whose `send` nothing has passed yet, so the server sees this answer alone."""
    request: Request[Any, Any, Any] = scope["litestar_app"].request_class(
        scope=scope, receive=receive, send=send
    )
    response = handler_for(exc)(request, exc)
    await response.to_asgi_response(app=None, request=request)(scope, receive, send)


def _store_error_in(exc: BaseException) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, RedisError | StoreUnavailable):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


async def send_last_resort_answer(
    scope: Scope, receive: Receive, send: Send, exc: Exception
) -> None:
    """The answer for an exception no handler answered (see `saas.app.Application`): a 503 when
    a store failed on the way, a 500 otherwise, as an error page or problem details. The caller
    has logged it. Should the page itself fail, a plain-text answer with the same status."""
    status = 503 if _store_error_in(exc) is not None else HTTP_500_INTERNAL_SERVER_ERROR
    try:
        request: Request[Any, Any, Any] = scope["litestar_app"].request_class(
            scope=scope, receive=receive, send=send
        )
        if status == 503:
            response = error_response(
                request, 503, STORE_UNAVAILABLE_DETAIL, title=STORE_UNAVAILABLE_TITLE
            )
        else:
            response = error_response(request, status, UNEXPECTED_DETAIL)
        answer = response.to_asgi_response(app=None, request=request)
    except Exception:
        logger.exception("error_page_failed")
        answer = ASGIResponse(
            body=(STORE_UNAVAILABLE_DETAIL if status == 503 else UNEXPECTED_DETAIL).encode(),
            status_code=status,
            media_type="text/plain; charset=utf-8",
        )
    await answer(scope, receive, send)
