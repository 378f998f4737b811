"""The one plugin that wires the application: routes, dependencies, errors, CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.di import Provide
from litestar.plugins import CLIPluginProtocol, InitPluginProtocol

from saas.config import Settings
from saas.system.controllers import SystemController
from saas.web.errors import EXCEPTION_HANDLERS

if TYPE_CHECKING:
    from click import Group
    from litestar.config.app import AppConfig


class ApplicationCore(InitPluginProtocol, CLIPluginProtocol):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        settings = self.settings
        app_config.route_handlers.extend([SystemController])
        app_config.dependencies["settings"] = Provide(lambda: settings, sync_to_thread=False)
        app_config.exception_handlers.update(EXCEPTION_HANDLERS)  # type: ignore[arg-type]
        app_config.state["settings"] = settings
        return app_config

    def on_cli_init(self, cli: Group) -> None:
        from saas.cli import register_commands

        register_commands(cli)
