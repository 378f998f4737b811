"""The sign-in rate limit: one counter per client address, counted atomically in the store.

Litestar's RateLimitMiddleware reads the request history, decides, and writes it back. Its lock
belongs to one middleware instance, and Litestar builds one per route, so two processes (or two
sign-in routes of one process) read the same history and each let a request through.

Here every request increments the counter in one atomic step and is let through only when the
new count is within the limit, so concurrent requests can never both take the last place.

A fixed window (the first request opens a minute, the counter expires with it) rather than a
sliding one: one Redis key and one round trip per request, and `Retry-After` is exactly the
key's remaining lifetime. The cost is that a client straddling two windows can send up to twice
the limit within a minute, which is still a hard ceiling on guessing for a sign-in throttle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from litestar import Request, Response
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import ImproperlyConfiguredException, TooManyRequestsException

from saas.stores import WindowCounter
from saas.web.errors import error_response

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

WINDOW_SECONDS = 60


class SignInRateLimited(TooManyRequestsException):
    """Too many sign-in requests from one address in the current window."""

    def __init__(self, *, retry_after: int, headers: dict[str, str]) -> None:
        unit = "second" if retry_after == 1 else "seconds"
        super().__init__(
            detail=(
                "There were too many sign-in attempts from your network in the last minute. "
                f"Please try again in {retry_after} {unit}."
            ),
            headers=headers,
        )
        self.retry_after = retry_after


def handle_sign_in_rate_limited(
    request: Request[Any, Any, Any], exc: SignInRateLimited
) -> Response[Any]:
    return error_response(
        request,
        exc.status_code,
        exc.detail,
        title="Too many sign-in attempts",
        extra={"retry_after": exc.retry_after},
        headers=exc.headers,
    )


def _client_address(scope: Scope) -> str:
    # Behind a proxy this is the forwarded address only when uvicorn runs with --proxy-headers.
    client = scope.get("client")
    return client[0] if client else "unknown"


def sign_in_rate_limit_middleware(
    *, limit: int, store: str, applies_to: Callable[[str], bool]
) -> Callable[[ASGIApp], ASGIApp]:
    policy = f"{limit}; w={WINDOW_SECONDS}"

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not applies_to(scope["path"]):
                await app(scope, receive, send)
                return
            counter = scope["litestar_app"].stores.get(store)
            if not isinstance(counter, WindowCounter):
                msg = f"the {store!r} store cannot count requests atomically"
                raise ImproperlyConfiguredException(msg)
            counted = await counter.hit(f"sign-in:{_client_address(scope)}", WINDOW_SECONDS)
            # Rounded up: a client that waits this long arrives in the next window.
            resets_in = max(1, math.ceil(counted.resets_in))
            headers = {
                "RateLimit-Policy": policy,
                "RateLimit-Limit": str(limit),
                "RateLimit-Remaining": str(max(0, limit - counted.count)),
                "RateLimit-Reset": str(resets_in),
            }
            if counted.count > limit:
                raise SignInRateLimited(
                    retry_after=resets_in, headers={**headers, "Retry-After": str(resets_in)}
                )

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    response_headers = MutableScopeHeaders.from_message(message)
                    for name, value in headers.items():
                        response_headers[name] = value
                await send(message)

            await app(scope, receive, send_with_headers)

        return middleware

    return factory
