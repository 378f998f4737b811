"""Every route of the application, registered here and nowhere else.

To add a tenant-scoped page or fragment, add its controller to `DASHBOARD`; for the JSON API,
to `API` (README, "Adding a tenant-scoped resource"). The routers make each handler on them
tenant-scoped: see `saas.tenancy.routers`.
"""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from saas.account.controllers import AccountController
from saas.admin.controllers import AdminController
from saas.api.controllers import InvitationsApi, MembersApi, OrganizationApi, ProjectsApi
from saas.audit.controllers import AuditController
from saas.invitations.controllers import InvitationController, InvitationsController
from saas.login.controllers import AuthController
from saas.members.controllers import MemberController, MembersController
from saas.organizations.controllers import (
    OrganizationHomeController,
    OrganizationSettingsController,
)
from saas.projects.controllers import ProjectsController
from saas.scim.controllers import DirectorySyncController, scim_router
from saas.security.controllers import SecurityController
from saas.services import TENANT_SERVICES
from saas.sso.controllers import SsoController
from saas.system.controllers import SystemController
from saas.tenancy.routers import api_router, dashboard_router

# /o/{slug}/...: tenant pages and htmx fragments, for the session's members.
DASHBOARD: list[ControllerRouterHandler] = [
    OrganizationHomeController,
    MembersController,
    MemberController,
    InvitationsController,
    InvitationController,
    ProjectsController,
    AuditController,
    SsoController,
    SecurityController,
    OrganizationSettingsController,
    DirectorySyncController,
]

# /api/v1/orgs/{org}/...: the JSON API, for bearer tokens of the organization's members.
API: list[ControllerRouterHandler] = [OrganizationApi, MembersApi, InvitationsApi, ProjectsApi]

# /scim/v2/...: each organization's directory, for the bearer token of that organization.
SCIM = scim_router

# Everything else: sign-in, health, the platform operator's console.
PUBLIC: list[ControllerRouterHandler] = [SystemController, AuthController, AccountController]
OPERATOR: list[ControllerRouterHandler] = [AdminController]


def route_handlers() -> list[ControllerRouterHandler]:
    """Read at application start, so a controller appended to a list above is served."""
    return [
        *PUBLIC,
        dashboard_router(DASHBOARD, dependencies=TENANT_SERVICES),
        api_router(API, dependencies=TENANT_SERVICES),
        SCIM(),
        *OPERATOR,
    ]
