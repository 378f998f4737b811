"""CSRF protection and sign-in rate limiting."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.middleware.csrf import generate_csrf_token
from litestar.utils import normalize_path

from saas.config import Settings
from saas.login.sessions import RATE_LIMIT_STORE
from saas.web.rate_limit import sign_in_rate_limit_middleware

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

CSRF_HEADER = "x-csrftoken"


def create_csrf_config(settings: Settings) -> CSRFConfig:
    return CSRFConfig(
        secret=settings.secret_key.get_secret_value(),
        # Cookies ignore ports, so the dev IdP's CSRF cookie must have another name.
        cookie_name="__Host-saas_csrf" if settings.secure_cookies else "saas_csrf",
        cookie_secure=settings.secure_cookies,
        cookie_httponly=False,  # htmx reads it into the X-CSRFToken header
        cookie_samesite="lax",
        cookie_path="/",
        header_name=CSRF_HEADER,
        # The JSON API authenticates with bearer tokens, which browsers never attach by themselves.
        exclude=["^/api/"],
    )


def fresh_csrf_cookie(settings: Settings) -> Cookie:
    """A new CSRF token for the browser, to send when the person behind it changes.

    The middleware accepts a token equal to the cookie's and keeps whatever cookie the browser
    has, so a token read before sign-in (or by the previous person, before sign-out) would stay
    valid; replacing the cookie makes every earlier token fail.
    """
    config = create_csrf_config(settings)
    return Cookie(
        key=config.cookie_name,
        value=generate_csrf_token(secret=config.secret),
        path=config.cookie_path,
        secure=config.cookie_secure,
        httponly=config.cookie_httponly,
        samesite=config.cookie_samesite,
        domain=config.cookie_domain,
    )


def _is_sign_in_path(path: str) -> bool:
    return path in {"/login", "/callback", "/invitation"} or (
        path.startswith("/o/") and path.endswith("/login")
    )


def create_login_rate_limit(settings: Settings) -> Callable[[ASGIApp], ASGIApp]:
    return sign_in_rate_limit_middleware(
        limit=settings.login_rate_limit_per_minute,
        store=RATE_LIMIT_STORE,
        applies_to=_is_sign_in_path,
    )


def content_security_policy(settings: Settings) -> str:
    # Forms post here, and some answers redirect to the IdP (sign-in, sign-out): Chrome applies
    # form-action to those redirects, so the IdP's origin is allowed as a form target too.
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: https:",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            f"form-action 'self' {settings.auth0_base_url}",
            "frame-ancestors 'none'",
        ]
    )


# The API reference pages load their renderer from a CDN; they hold no tenant data.
DOCS_CSP = (
    "default-src 'self' https: 'unsafe-inline'; img-src 'self' data: https:; frame-ancestors 'none'"
)


_PRIVATE_PREFIXES = ("/o/", "/api/v1/", "/admin", "/select-organization")


def _is_private(path: str) -> bool:
    return path.startswith(_PRIVATE_PREFIXES)


def security_headers_middleware_factory(settings: Settings) -> Any:
    strict_csp = content_security_policy(settings).encode()
    common: list[tuple[bytes, bytes]] = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    ]
    if settings.secure_cookies:
        common.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    # Decided on the path as Litestar routes it (`//o//acme/` is `/o/acme`), not
                    # as sent: a repeated slash must not make a tenant page cacheable.
                    path = normalize_path(scope["path"])
                    csp = DOCS_CSP.encode() if path.startswith("/api/docs") else strict_csp
                    private = _is_private(path)
                    headers = [
                        (k, v)
                        for k, v in message.get("headers", [])
                        if not (private and k.lower() == b"cache-control")
                    ]
                    headers.extend(common)
                    headers.append((b"content-security-policy", csp))
                    if private:
                        # Tenant data must not linger in shared or browser caches.
                        headers.append((b"cache-control", b"no-store"))
                    message["headers"] = headers
                await send(message)

            await app(scope, receive, send_with_headers)

        return middleware

    return factory
