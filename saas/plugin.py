"""The one plugin that wires the application: routes, dependencies, errors, CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar.di import Provide
from litestar.exceptions import ValidationException
from litestar.plugins import CLIPluginProtocol, InitPluginProtocol

from saas.api.openapi import create_openapi_config
from saas.auth0.runtime import lifecycle
from saas.config import Settings
from saas.login.provider import OIDCProvider
from saas.login.sessions import (
    create_stores,
)
from saas.routes import route_handlers
from saas.stores import sweep_expired_entries
from saas.web.errors import EXCEPTION_HANDLERS
from saas.web.input import handle_validation_exception
from saas.web.middleware import route_middleware
from saas.web.rate_limit import SignInRateLimited, handle_sign_in_rate_limited
from saas.web.security import create_csrf_config

if TYPE_CHECKING:
    from click import Group
    from litestar.config.app import AppConfig


class ApplicationCore(InitPluginProtocol, CLIPluginProtocol):
    def __init__(self, settings: Settings, db_config: SQLAlchemyAsyncConfig) -> None:
        self.settings = settings
        self.db_config = db_config

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        settings = self.settings
        if settings.uses_dev_idp and settings.is_production:
            raise RuntimeError("the development IdP cannot be used when APP_ENV=production")
        provider = OIDCProvider(settings)
        app_config.route_handlers.extend(route_handlers())
        app_config.openapi_config = create_openapi_config()
        app_config.state["provider"] = provider
        app_config.state["db_config"] = self.db_config
        app_config.dependencies["settings"] = Provide(lambda: settings, sync_to_thread=False)
        app_config.dependencies["provider"] = Provide(lambda: provider, sync_to_thread=False)
        app_config.on_shutdown.append(provider.aclose)
        start_outbox, stop_outbox = lifecycle(settings, self.db_config)
        app_config.on_startup.append(start_outbox)  # type: ignore[arg-type]
        app_config.on_shutdown.append(stop_outbox)  # type: ignore[arg-type]
        stores = create_stores(settings)
        app_config.stores = stores
        app_config.lifespan.append(
            sweep_expired_entries(stores.values(), settings.store_sweep_interval_seconds)
        )
        app_config.middleware.extend(route_middleware(settings, self.db_config))
        app_config.csrf_config = create_csrf_config(settings)
        app_config.exception_handlers.update(EXCEPTION_HANDLERS)  # type: ignore[arg-type]
        app_config.exception_handlers[SignInRateLimited] = handle_sign_in_rate_limited
        app_config.exception_handlers[ValidationException] = handle_validation_exception
        app_config.state["settings"] = settings
        return app_config

    def on_cli_init(self, cli: Group) -> None:
        from saas.cli import register_commands

        register_commands(cli)
