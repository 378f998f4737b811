"""The services handlers receive, built per request on the request's database session.

Handlers name the service they need as a parameter (`projects: ProjectService`); they never
construct one. Services of tenant data are bound to the request's tenant here, so a handler
cannot hand one another organization's id. `saas.routes` registers these: the tenant-bound
ones on the tenant routers (they need `tenant`), the rest for the whole application.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import AuditService
from saas.config import Settings
from saas.db.models import Organization
from saas.invitations.services import InvitationService
from saas.members.services import MembershipService
from saas.organizations.services import OrganizationService
from saas.organizations.settings import OrganizationSettingsService
from saas.projects.services import ProjectService
from saas.sso.services import SsoService
from saas.tenancy.context import TenantContext


def provide_projects(
    tenant: NamedDependency[TenantContext], db_session: NamedDependency[AsyncSession]
) -> ProjectService:
    return ProjectService(session=db_session, organization_id=tenant.organization.id)


def provide_org_settings(
    tenant: NamedDependency[TenantContext], db_session: NamedDependency[AsyncSession]
) -> OrganizationSettingsService:
    return OrganizationSettingsService(db_session, tenant.organization)


def provide_sso(
    tenant: NamedDependency[TenantContext],
    db_session: NamedDependency[AsyncSession],
    settings: NamedDependency[Settings],
) -> SsoService:
    return SsoService(db_session, tenant.organization, settings)


@dataclass(frozen=True, slots=True)
class SsoForOrganization:
    """`SsoService` for an organization the request does not resolve as its tenant: the
    operator console sets up the connection of an organization it has just created."""

    session: AsyncSession
    settings: Settings

    def __call__(self, organization: Organization) -> SsoService:
        return SsoService(self.session, organization, self.settings)


def provide_sso_for(
    db_session: NamedDependency[AsyncSession], settings: NamedDependency[Settings]
) -> SsoForOrganization:
    return SsoForOrganization(db_session, settings)


def provide_memberships(db_session: NamedDependency[AsyncSession]) -> MembershipService:
    return MembershipService(session=db_session)


def provide_invitations(db_session: NamedDependency[AsyncSession]) -> InvitationService:
    return InvitationService(session=db_session)


def provide_audit(db_session: NamedDependency[AsyncSession]) -> AuditService:
    return AuditService(session=db_session)


def provide_organizations(db_session: NamedDependency[AsyncSession]) -> OrganizationService:
    return OrganizationService(session=db_session)


TENANT_SERVICES: dict[str, Provide] = {
    "projects": Provide(provide_projects, sync_to_thread=False),
    "sso": Provide(provide_sso, sync_to_thread=False),
    "org_settings": Provide(provide_org_settings, sync_to_thread=False),
}

SERVICES: dict[str, Provide] = {
    "memberships": Provide(provide_memberships, sync_to_thread=False),
    "invitations": Provide(provide_invitations, sync_to_thread=False),
    "audit": Provide(provide_audit, sync_to_thread=False),
    "organizations": Provide(provide_organizations, sync_to_thread=False),
    "sso_for": Provide(provide_sso_for, sync_to_thread=False),
}
