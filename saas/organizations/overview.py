"""The organization's overview: what a person opening it should know, and do next.

Read in a fixed number of statements whatever the organization's size (one count, no row per
member, invitation or domain loaded more than once): the member count is the organization's
own column, pending invitations are one `COUNT`, the SSO connection and its sync state two
queries, the domains one, the latest audit events at most two. Each part is read only when the
viewer's role may see it, so a viewer's overview costs less and shows nothing it may not.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import AuditEntry, OrganizationAuditLog
from saas.auth0.sync_state import SyncState
from saas.db.models import EnterpriseConnection, Invitation
from saas.organizations.settings import DomainRow, domain_rows
from saas.sso.services import SsoService
from saas.tenancy.context import TenantContext
from saas.tenancy.permissions import Permission

LATEST_EVENTS = 5


@dataclass(frozen=True, slots=True)
class NextAction:
    """One thing this person should do next: what, why, and where (a route name)."""

    title: str
    detail: str
    route: str


@dataclass(slots=True)
class Overview:
    member_count: int
    pending_invitations: int | None = None  # None: the viewer may not see invitations
    connection: EnterpriseConnection | None = None
    sso_sync: SyncState | None = None
    sees_sso: bool = False
    domains: list[DomainRow] | None = None
    events: list[AuditEntry] | None = None
    next_actions: list[NextAction] = field(default_factory=list)

    @property
    def verified_domains(self) -> int:
        return sum(1 for row in self.domains or [] if row.verified)


async def pending_invitation_count(session: AsyncSession, tenant: TenantContext) -> int:
    now = datetime.datetime.now(datetime.UTC)
    statement = select(func.count(Invitation.id)).where(
        Invitation.organization_id == tenant.organization.id,
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > now,
    )
    return int(await session.scalar(statement) or 0)


def next_actions(tenant: TenantContext, overview: Overview) -> list[NextAction]:
    actions: list[NextAction] = []
    if tenant.can(Permission.ORG_MANAGE):
        for row in overview.domains or []:
            if row.verifiable:  # not one another organization has verified meanwhile
                actions.append(
                    NextAction(
                        f"Verify {row.domain.domain}",
                        f"Publish the TXT record {row.record_name}, then verify it; until then "
                        "sign-ins from this domain are not routed to your organization.",
                        "org.settings",
                    )
                )
        if overview.domains == []:
            actions.append(
                NextAction(
                    "Add your email domain",
                    "A verified domain sends your people's sign-ins to this organization.",
                    "org.settings",
                )
            )
        sync = overview.sso_sync
        if overview.connection is None:
            actions.append(
                NextAction(
                    "Set up single sign-on",
                    "Connect your identity provider (SAML or OpenID Connect).",
                    "sso.settings",
                )
            )
        elif sync is not None and sync.failed:
            actions.append(
                NextAction(
                    "Fix single sign-on",
                    "Auth0 did not accept the last change to your connection.",
                    "sso.settings",
                )
            )
        elif (sync is not None and sync.pending) or overview.connection.auth0_connection_id is None:
            actions.append(
                NextAction(
                    "Finish single sign-on set-up",
                    "Auth0 is still setting up your connection; test it once it is in step.",
                    "sso.settings",
                )
            )
    if tenant.can(Permission.MEMBERS_INVITE) and overview.member_count <= 1:
        actions.append(
            NextAction("Invite your team", "You are the only member so far.", "members.list")
        )
    if overview.pending_invitations:
        actions.append(
            NextAction(
                "Follow up on pending invitations",
                f"{overview.pending_invitations} not accepted yet; resend or revoke them.",
                "members.list",
            )
        )
    return actions


async def overview_of(
    session: AsyncSession, tenant: TenantContext, *, sso: SsoService, audit: OrganizationAuditLog
) -> Overview:
    overview = Overview(member_count=tenant.organization.member_count)
    if tenant.can(Permission.MEMBERS_INVITE):
        overview.pending_invitations = await pending_invitation_count(session, tenant)
    if tenant.can(Permission.ORG_MANAGE):
        overview.sees_sso = True
        overview.connection = await sso.current()
        if overview.connection is not None:
            overview.sso_sync = await sso.sync_of(overview.connection)
        overview.domains = await domain_rows(session, tenant.organization.id)
    if tenant.can(Permission.AUDIT_READ):
        overview.events, _ = await audit.page(limit=LATEST_EVENTS)
    overview.next_actions = next_actions(tenant, overview)
    return overview
