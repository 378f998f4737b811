"""CSRF protection and sign-in rate limiting."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.middleware.csrf import generate_csrf_token

from saas.config import Settings
from saas.login.sessions import RATE_LIMIT_STORE
from saas.tenancy.routers import PRIVATE_OPT
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
        # So do SCIM clients (the organization's IdP), under /scim/.
        exclude=["^/api/", "^/scim/"],
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


# The API reference pages load their renderer from a CDN; they hold no tenant data. Their
# router names this policy (`CSP_OPT` in its `opt`, see saas.api.openapi).
DOCS_CSP = (
    "default-src 'self' https: 'unsafe-inline'; img-src 'self' data: https:; frame-ancestors 'none'"
)
# Route `opt` keys the edge reads from the handler that answered: a router (or handler) names
# its content security policy, and the tenant routers mark their answers private.
CSP_OPT = "content_security_policy"
NO_STORE = (b"cache-control", b"no-store")


def _route_opt(scope: Scope) -> dict[str, Any]:
    # Litestar records the handler it routed to in the scope; an answer from before routing
    # (an unknown path, a 405) has none.
    handler = scope.get("route_handler")
    return handler.opt if handler is not None else {}


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
                    opt = _route_opt(scope)
                    csp = opt.get(CSP_OPT)
                    private = bool(opt.get(PRIVATE_OPT))
                    headers = [
                        (k, v)
                        for k, v in message.get("headers", [])
                        if not (private and k.lower() == b"cache-control")
                    ]
                    headers.extend(common)
                    headers.append(
                        (b"content-security-policy", csp.encode() if csp else strict_csp)
                    )
                    # Private answers are never stored, whatever their handler set; any other
                    # answer is stored only when it says so (static files do).
                    if private or not any(k.lower() == b"cache-control" for k, _ in headers):
                        headers.append(NO_STORE)
                    message["headers"] = headers
                await send(message)

            await app(scope, receive, send_with_headers)

        return middleware

    return factory
