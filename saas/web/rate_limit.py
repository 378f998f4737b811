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

import ipaddress
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from litestar import Request, Response
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import (
    ClientException,
    ImproperlyConfiguredException,
    TooManyRequestsException,
)

from saas.stores import WindowCounter
from saas.web.errors import error_response

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

logger = structlog.get_logger("saas.rate_limit")
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


class ClientAddressUnknown(ClientException):
    """The server gave no client address, so there is no counter to count this request in."""

    def __init__(self) -> None:
        super().__init__(
            detail=(
                "This server cannot tell which network your request comes from, so it cannot "
                "accept sign-ins right now. The administrator has been told."
            )
        )


IPV6_SUBSCRIBER_PREFIX = 64


def client_key(scope: Scope) -> str:
    """The counter a request counts against: its client's address, an IPv6 client's /64.

    An IPv6 subscriber is usually given a whole /64 (and picks addresses in it freely, with
    privacy extensions even by itself), so a counter per address would give each one 2**64
    counters. IPv4-mapped IPv6 addresses count as the IPv4 address they are.

    Behind a proxy the address is the forwarded one only when uvicorn runs with
    --proxy-headers; clients behind one NAT (a corporate network) share one counter.

    Without an address (a server on a Unix socket, with no proxy headers trusted) there is
    nothing to key by: one shared counter would let one guesser lock everyone out of sign-in,
    and no counter would let guessing go unlimited. The request is refused instead, and the
    operator is told what to fix.
    """
    client = scope.get("client")
    host = client[0] if client else None
    if not host:
        logger.error(
            "sign_in_client_address_unknown",
            reason="the server gave no client address: behind a proxy on a Unix socket, run "
            "uvicorn with --proxy-headers and --forwarded-allow-ips naming the proxy",
        )
        raise ClientAddressUnknown
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a name the server or a trusted proxy gave: count it as it is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, IPV6_SUBSCRIBER_PREFIX), strict=False)
        return str(network)
    return str(address)


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
            counted = await counter.hit(f"sign-in:{client_key(scope)}", WINDOW_SECONDS)
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
