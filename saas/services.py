"""The services handlers receive, built per request on the request's database session.

Handlers name the service they need as a parameter (`projects: ProjectService`); they never
construct one. Services of tenant data are bound to the request's tenant here, so a handler
cannot hand one another organization's id. `saas.routes` registers these: the tenant-bound
ones on the tenant routers (they need `tenant`), the rest for the whole application.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor, AuditService, OrganizationAuditLog
from saas.config import Settings
from saas.db.models import Organization
from saas.invitations.services import InvitationService, TenantInvitations
from saas.login.current_user import actor_from
from saas.members.services import MembershipService, TenantMembers
from saas.organizations.services import OrganizationService
from saas.organizations.settings import OrganizationSettingsService
from saas.projects.services import ProjectService
from saas.scim.tokens import DirectorySettingsService
from saas.security.services import SecurityPolicyService
from saas.sso.services import SsoService
from saas.tenancy.caller import Caller
from saas.tenancy.context import TenantContext


def provide_caller(
    request: Request[Any, Any, Any], tenant: NamedDependency[TenantContext]
) -> Caller:
    return Caller(
        organization=tenant.organization,
        authority=tenant.acting,
        actor=actor_from(request, tenant.user),
    )


def provide_members(
    caller: NamedDependency[Caller], db_session: NamedDependency[AsyncSession]
) -> TenantMembers:
    return TenantMembers(MembershipService(session=db_session), caller)


def provide_tenant_invitations(
    caller: NamedDependency[Caller],
    db_session: NamedDependency[AsyncSession],
    settings: NamedDependency[Settings],
) -> TenantInvitations:
    return TenantInvitations(
        InvitationService(session=db_session),
        caller,
        ttl=datetime.timedelta(days=settings.invitation_ttl_days),
    )


def provide_projects(
    caller: NamedDependency[Caller], db_session: NamedDependency[AsyncSession]
) -> ProjectService:
    return ProjectService(session=db_session, caller=caller)


def provide_org_settings(
    caller: NamedDependency[Caller], db_session: NamedDependency[AsyncSession]
) -> OrganizationSettingsService:
    return OrganizationSettingsService(db_session, caller)


def provide_sso(
    caller: NamedDependency[Caller],
    db_session: NamedDependency[AsyncSession],
    settings: NamedDependency[Settings],
) -> SsoService:
    return SsoService(db_session, caller, settings)


@dataclass(frozen=True, slots=True)
class SsoForOrganization:
    """`SsoService` for an organization the request does not resolve as its tenant: the
    operator console sets up the connection of an organization it has just created."""

    session: AsyncSession
    settings: Settings

    def __call__(self, organization: Organization, actor: Actor) -> SsoService:
        return SsoService(self.session, Caller.system(organization, actor), self.settings)


def provide_sso_for(
    db_session: NamedDependency[AsyncSession], settings: NamedDependency[Settings]
) -> SsoForOrganization:
    return SsoForOrganization(db_session, settings)


def provide_security(
    caller: NamedDependency[Caller], db_session: NamedDependency[AsyncSession]
) -> SecurityPolicyService:
    return SecurityPolicyService(session=db_session, caller=caller)


def provide_directory_settings(
    caller: NamedDependency[Caller], db_session: NamedDependency[AsyncSession]
) -> DirectorySettingsService:
    return DirectorySettingsService(db_session, caller)


def provide_invitations(db_session: NamedDependency[AsyncSession]) -> InvitationService:
    return InvitationService(session=db_session)


def provide_audit_log(
    caller: NamedDependency[Caller], db_session: NamedDependency[AsyncSession]
) -> OrganizationAuditLog:
    return OrganizationAuditLog(AuditService(session=db_session), caller.organization_id)


def provide_audit_service(db_session: NamedDependency[AsyncSession]) -> AuditService:
    return AuditService(session=db_session)


def provide_organizations(db_session: NamedDependency[AsyncSession]) -> OrganizationService:
    return OrganizationService(session=db_session)


# On the tenant routers (`saas.routes`): bound to the request's tenant and caller.
TENANT_SERVICES: dict[str, Provide] = {
    "caller": Provide(provide_caller, sync_to_thread=False),
    "members": Provide(provide_members, sync_to_thread=False),
    "invitations": Provide(provide_tenant_invitations, sync_to_thread=False),
    "projects": Provide(provide_projects, sync_to_thread=False),
    "sso": Provide(provide_sso, sync_to_thread=False),
    "audit": Provide(provide_audit_log, sync_to_thread=False),
    "security": Provide(provide_security, sync_to_thread=False),
    "org_settings": Provide(provide_org_settings, sync_to_thread=False),
    "directory_settings": Provide(provide_directory_settings, sync_to_thread=False),
}

# Services that take any organization's id and write as the system: only the controllers that
# act before a tenant exists (sign-in, accepting an invitation) or above every tenant (the
# operator console) declare them, so no tenant route can reach around its tenant's binding.
SIGN_IN_SERVICES: dict[str, Provide] = {
    "organizations": Provide(provide_organizations, sync_to_thread=False),
    "invitation_service": Provide(provide_invitations, sync_to_thread=False),
}
# /account: a signed-in person's own sessions, outside every tenant. Their audit entries are
# platform events (no organization), recorded as the person.
ACCOUNT_SERVICES: dict[str, Provide] = {
    "audit_service": Provide(provide_audit_service, sync_to_thread=False),
}
OPERATOR_SERVICES: dict[str, Provide] = {
    **SIGN_IN_SERVICES,
    "sso_for": Provide(provide_sso_for, sync_to_thread=False),
}
