"""The member-management dashboard's controllers, registered by saas.plugin."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

DASHBOARD_CONTROLLERS: list[ControllerRouterHandler] = []
