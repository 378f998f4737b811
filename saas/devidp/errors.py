"""The three ways the dev IdP reports a failure, each in the shape Auth0 uses for it.

* ``HtmlError``: a page for the person at the browser, used when redirecting would be
  unsafe (unknown client, unregistered redirect URI, disallowed logout URL);
* ``AuthorizeRedirect``: an OAuth error sent back to a *validated* redirect URI;
* ``OAuthError``: the token endpoint's JSON errors (``{"error", "error_description"}``);
* ``ManagementError``: the Management API's ``{statusCode, error, message, errorCode}``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.response import Redirect, Template

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class HtmlError(Exception):
    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


class AuthorizeRedirect(Exception):
    def __init__(self, redirect_uri: str, error: str, description: str, state: str | None) -> None:
        super().__init__(description)
        self.redirect_uri = redirect_uri
        self.error = error
        self.description = description
        self.state = state


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class ManagementError(Exception):
    def __init__(self, status: int, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code


def add_query(url: str, params: dict[str, str | None]) -> str:
    parts = urlsplit(url)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def redirect_with_error(exc: AuthorizeRedirect) -> Redirect:
    return Redirect(
        add_query(
            exc.redirect_uri,
            {"error": exc.error, "error_description": exc.description, "state": exc.state},
        ),
        status_code=302,
    )


def management_body(status: int, message: str, error_code: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "statusCode": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
    }
    if error_code:
        body["errorCode"] = error_code
    return body


def _html_error(request: Request[Any, Any, Any], exc: HtmlError) -> Template:
    return Template(
        template_name="error.html",
        context={"title": exc.title, "message": exc.message},
        status_code=exc.status,
        headers=NO_STORE,
    )


def _authorize_redirect(request: Request[Any, Any, Any], exc: AuthorizeRedirect) -> Redirect:
    return redirect_with_error(exc)


def _oauth_error(request: Request[Any, Any, Any], exc: OAuthError) -> Response[Any]:
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="devidp"'
    return Response(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        headers=headers,
    )


def _management_error(request: Request[Any, Any, Any], exc: ManagementError) -> Response[Any]:
    return Response(
        management_body(exc.status, exc.message, exc.error_code), status_code=exc.status
    )


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Litestar's own errors (CSRF failure, 404, 405) rendered per area of the server."""
    path = request.url.path
    if path.startswith("/api/v2/"):
        return Response(
            management_body(exc.status_code, str(exc.detail), None), status_code=exc.status_code
        )
    if path.startswith(("/oauth/", "/userinfo", "/__dev/faults")) or path.endswith(".json"):
        return Response(
            {"error": "invalid_request", "error_description": str(exc.detail)},
            status_code=exc.status_code,
            headers=NO_STORE,
        )
    title = HTTPStatus(exc.status_code).phrase
    message = str(exc.detail)
    if isinstance(exc, PermissionDeniedException) and "CSRF" in message:
        title = "This form has expired"
        message = (
            "The security token of this form did not match (cookies off, or a stale page). "
            "Go back to the application and start signing in again."
        )
    elif isinstance(exc, NotAuthorizedException):
        title = "Not signed in"
    return Template(
        template_name="error.html",
        context={"title": title, "message": message},
        status_code=exc.status_code,
    )


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    HtmlError: _html_error,
    AuthorizeRedirect: _authorize_redirect,
    OAuthError: _oauth_error,
    ManagementError: _management_error,
    HTTPException: _http_exception,
}
