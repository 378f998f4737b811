"""The invitations' views on the members page: the open invitations and the invite form."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from uuid import UUID

from saas.auth0.sync_state import SyncState
from saas.db.models import Invitation
from saas.invitations.services import TenantInvitations
from saas.tenancy.context import TenantContext
from saas.tenancy.permissions import Permission, Role

INVITATIONS_SHOWN = 50


@dataclass
class InvitationListing:
    invitations: list[Invitation]
    total: int
    now: datetime.datetime
    # Where Auth0 stands on each shown invitation (those with sync jobs).
    sync: dict[UUID, SyncState] = field(default_factory=dict)


async def invitation_listing(
    tenant: TenantContext, invitations: TenantInvitations
) -> InvitationListing | None:
    """Open invitations (pending and expired), for those who may invite; None for others."""
    if not tenant.can(Permission.MEMBERS_INVITE):
        return None
    page = await invitations.page(open_only=True, limit=INVITATIONS_SHOWN, offset=0)
    shown = list(page.items)
    return InvitationListing(
        invitations=shown,
        total=page.total,
        now=datetime.datetime.now(datetime.UTC),
        sync=await invitations.sync_of(shown),
    )


@dataclass
class InviteForm:
    emails: str = ""
    role: str = Role.MEMBER.value
    errors: dict[str, list[str]] = field(default_factory=dict)
