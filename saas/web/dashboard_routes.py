"""The member-management dashboard's controllers, registered by saas.plugin."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from saas.audit.controllers import AuditController
from saas.invitations.controllers import InvitationsController
from saas.members.controllers import MembersController

DASHBOARD_CONTROLLERS: list[ControllerRouterHandler] = [
    MembersController,
    InvitationsController,
    AuditController,
]
