"""Application factory."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import structlog
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NoRouteMatchFoundException
from litestar.handlers import BaseRouteHandler
from litestar.plugins.flash import FlashConfig, FlashPlugin
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from litestar.types.internal_types import PathParameterDefinition
from litestar.utils import join_paths

from saas.config import PROJECT_ROOT, Settings, load_settings
from saas.db.config import create_sqlalchemy_config
from saas.plugin import ApplicationCore
from saas.web.dates import FILTERS as DATE_FILTERS
from saas.web.errors import send_last_resort_answer
from saas.web.input import AppRequest, refuse_control_characters
from saas.web.logging import create_logging_config
from saas.web.middleware import wrap_edge

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar.routes import BaseRoute
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

logger = structlog.get_logger("saas.app")
# Path parameter types whose value `route_reverse` also takes as a string (as Litestar's does).
_STRING_ALLOWED_FOR = frozenset({datetime, date, time, timedelta, float, Path, UUID})
TEMPLATES_DIR = PROJECT_ROOT / "templates"
STATIC_DIR = PROJECT_ROOT / "static"


class Application(Litestar):
    """Litestar with one layer around the whole application, outside its router.

    Litestar runs middleware per route: the router's own 404 and 405 never pass through it, and
    neither do answers to exceptions raised by the middleware Litestar places around a handler
    (CSRF, rate limiting, the session store), which its outermost exception handler makes. The
    request id, the security headers and the access log belong to every answer, so they wrap
    everything here, where each `http.response.start` that reaches the server passes.

    Inside that layer, an exception that escapes Litestar before any answer has left (Litestar
    lets one through when it was raised while an answer was on its way out, thinking that answer
    sent) is answered here, so that even then the client gets a clear 500 or 503 with the
    headers and the request id, and the log says so, instead of the server's bare 500.
    """

    def __init__(self, *args: Any, edge: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        # Before Litestar's constructor, which registers the routes (and so clears it).
        self._reverse_routes: dict[tuple[str, frozenset[str]], BaseRoute] = {}
        super().__init__(*args, **kwargs)
        self._edge = edge(self._answer_what_escaped)

    def register(self, value: Any) -> None:  # type: ignore[override]
        self._reverse_routes.clear()  # a new route may be the one a name now reverses to
        super().register(value)

    def route_reverse(self, name: str | BaseRouteHandler, **path_parameters: Any) -> str:
        """Litestar's `route_reverse`, with its choice of route remembered per name and set of
        parameters. The members page calls it three times a row (`url_for` in templates), and
        Litestar looks the name up and sorts its routes at each call. Each value is still checked
        against the parameter's type, as Litestar does."""
        if isinstance(name, BaseRouteHandler):
            name = str(name)
        key = (name, frozenset(path_parameters))
        route = self._reverse_routes.get(key)
        if route is None:
            handler_index = self.get_handler_index_by_name(name)
            if handler_index is None:
                raise NoRouteMatchFoundException(f"Route {name} can not be found")
            routes = sorted(
                self.asgi_router.route_mapping[handler_index["identifier"]],
                key=lambda r: len(r.path_parameters),
                reverse=True,
            )
            route = next((r for r in routes if key[1].issuperset(r.path_parameters)), routes[-1])
            self._reverse_routes[key] = route
        output: list[str] = []
        for component in route.path_components:
            if isinstance(component, PathParameterDefinition):
                value = path_parameters.get(component.name)
                if not isinstance(value, component.type) and (
                    component.type not in _STRING_ALLOWED_FOR or not isinstance(value, str)
                ):
                    raise NoRouteMatchFoundException(
                        f"Received type for path parameter {component.name} doesn't match "
                        f"declared type {component.type}"
                    )
                output.append(str(value))
            else:
                output.append(component)
        return join_paths(output)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        await self._edge(scope, receive, send)

    async def _answer_what_escaped(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True  # before sending: a start the server refused is its to answer
            await send(message)

        try:
            await super().__call__(scope, receive, send_noting_start)
        except Exception as error:
            if started:
                raise  # part of an answer is out: the server can only close the connection
            logger.exception("unhandled_exception_escaped", exc_type=type(error).__name__)

            async def send_through_hooks(message: Message) -> None:
                # As every answer from Litestar does: the hooks close the database session.
                for hook in self.before_send:
                    await hook(message, scope)
                await send(message)

            await send_last_resort_answer(scope, receive, send_through_hooks, error)


def _configure_jinja(engine: JinjaTemplateEngine, settings: Settings) -> None:
    engine.engine.auto_reload = settings.is_development
    engine.engine.filters.update(DATE_FILTERS)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    db_config = create_sqlalchemy_config(settings)
    template_config = TemplateConfig(
        directory=TEMPLATES_DIR,
        engine=JinjaTemplateEngine,
        # Outside development, templates do not change under a running server: skip the
        # file-modification check Jinja otherwise makes on every render.
        engine_callback=lambda engine: _configure_jinja(engine, settings),
    )
    return Application(
        edge=wrap_edge(settings),
        route_handlers=[
            create_static_files_router(
                path="/static",
                directories=[Path(STATIC_DIR)],
                # Not fingerprinted: a browser keeps them, but asks (ETag) whether they changed.
                cache_control=CacheControlHeader(no_cache=True),
            )
        ],
        plugins=[
            SQLAlchemyPlugin(config=db_config),
            HTMXPlugin(),
            ApplicationCore(settings, db_config),
            # After ApplicationCore, which installs the session middleware flashes live in;
            # `get_flashes()` in templates/layouts/base.html shows them.
            FlashPlugin(config=FlashConfig(template_config=template_config)),
        ],
        template_config=template_config,
        # Before every other guard, so before a slug or a search reaches the database.
        guards=[refuse_control_characters],
        request_class=AppRequest,
        logging_config=create_logging_config(settings),
        debug=False,
    )
