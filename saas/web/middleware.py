"""Every middleware of the application, in one place and in order, outermost first.

Two stacks, because Litestar runs its middleware per route (after routing):

- `edge_layers` wrap the whole application, outside its router (saas.app.Application), so
  that every answer, even the router's own 404 and 405, gets the request id, the security
  headers and an access-log line.
- `route_middleware` runs around each handler, inside Litestar's exception handling.
"""

from __future__ import annotations

from collections.abc import Callable

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar.types import ASGIApp, Middleware

from saas.config import Settings
from saas.login.sessions import create_session_config, session_timeout_middleware_factory
from saas.web.commit import commit_before_answer_middleware_factory
from saas.web.logging import access_log_middleware
from saas.web.security import create_login_rate_limit, security_headers_middleware_factory
from saas.web.sql_timing import count_statements_of, sql_timing_middleware

Layer = Callable[[ASGIApp], ASGIApp]


def edge_layers(settings: Settings) -> list[Layer]:
    return [
        access_log_middleware,
        security_headers_middleware_factory(settings),
    ]


def route_middleware(settings: Settings, db_config: SQLAlchemyAsyncConfig) -> list[Middleware]:
    timing: list[Middleware] = []
    if not settings.is_production:
        # Outside production only: it tells the client how much database work a URL costs.
        count_statements_of(db_config.get_engine())
        timing.append(sql_timing_middleware)
    return [
        *timing,
        create_session_config(settings).middleware,
        session_timeout_middleware_factory(settings),
        create_login_rate_limit(settings),
        # Innermost, so the commit comes before the session is saved on the way out.
        commit_before_answer_middleware_factory(db_config.session_scope_key),
    ]


def wrap_edge(settings: Settings) -> Layer:
    """The edge layers composed, the first outermost."""
    layers = edge_layers(settings)

    def wrap(app: ASGIApp) -> ASGIApp:
        for layer in reversed(layers):
            app = layer(app)
        return app

    return wrap
