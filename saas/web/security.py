"""CSRF protection and sign-in rate limiting."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.middleware.rate_limit import RateLimitConfig

from saas.auth.sessions import RATE_LIMIT_STORE
from saas.config import Settings

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


def _is_sign_in_path(request: Request[Any, Any, Any]) -> bool:
    path = request.url.path
    return path in {"/login", "/callback", "/invitation"} or (
        path.startswith("/o/") and path.endswith("/login")
    )


def create_login_rate_limit(settings: Settings) -> RateLimitConfig:
    return RateLimitConfig(
        rate_limit=("minute", settings.login_rate_limit_per_minute),
        store=RATE_LIMIT_STORE,
        check_throttle_handler=_is_sign_in_path,
        set_rate_limit_headers=True,
    )
