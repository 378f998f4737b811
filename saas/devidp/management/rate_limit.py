"""Auth0's rate-limit headers on every Management API answer.

Auth0 "reports up-to-date information on the current status of your rate limits using HTTP
response headers": ``X-RateLimit-Limit`` (requests allowed in the window),
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` ("a UNIX timestamp of the expected time when
the rate limit will reset"), on successful answers and on 429 alike (Auth0 docs, Rate Limit
Policy, "Predict when requests to a tenant will be rate limited"; Auth0 Community,
https://community.auth0.com/t/how-to-tell-if-you-are-approaching-the-rate-limit/82103).
Relying on them, not on ``Retry-After``, is what a client of the real API has to do, so the
dev IdP sends them and nothing else on its own 429s.

The dev IdP counts requests in fixed windows (``saas.devidp.rate_window``) and reports that
count; it does not refuse requests past it (a test asks for a 429 with a fault,
``saas.devidp.faults``).
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from saas.devidp.context import get_idp


def rate_limit_headers(limit: int, remaining: int, reset: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
    }


class RateLimitHeaders(ASGIMiddleware):
    """Adds the three headers to every answer under ``/api/v2``, errors included; an answer
    that set them itself (a 429 fault) keeps its own."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        idp = get_idp(scope["litestar_app"].state)
        limit, remaining, reset = idp.rate_limit.count(idp.clock())

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in rate_limit_headers(limit, remaining, reset).items():
                    if headers.get(name) is None:
                        headers[name] = value
            await send(message)

        await next_app(scope, receive, send_with_headers)
