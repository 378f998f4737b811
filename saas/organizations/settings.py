"""An organization's own settings, changed by its admins (org:manage): the display name, and
the email domains that route its people's sign-ins.

The rules are the operator console's (`OrganizationService`): a domain is normalized the one
way, public mailbox domains are refused, a claim blocks no one but one organization at most
verifies a domain, and only a TXT record holding the token verifies it. What this adds is the
tenant's side: every write re-reads the admin's role inside its own transaction
(saas/tenancy/authority.py), and the DNS lookup of a verification runs with no transaction open.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import exists
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from saas.audit.actions import AuditAction
from saas.audit.services import AuditService
from saas.auth0.jobs import sync_connection_later, sync_organization_later
from saas.db.models import EnterpriseConnection, Organization, OrganizationDomain
from saas.errors import InvalidInput, NotFound
from saas.organizations.dns_verification import has_token, record_name
from saas.organizations.domains import normalize_domain
from saas.organizations.services import (
    ConnectionRepository,
    DomainRepository,
    OrganizationService,
    mark_domain_verified,
    refuse_if_verified_elsewhere,
)
from saas.tenancy.authority import acting_role
from saas.tenancy.caller import Caller
from saas.tenancy.permissions import Permission

MAX_DISPLAY_NAME = 255
# Connections whose Auth0 options carry the organization's verified domains (home-realm
# discovery); a change of those domains is synced to them, as verifying one from the console is.
ROUTED_STRATEGIES = ("samlp", "oidc")


def clean_display_name(value: str) -> str:
    """Runs of white space become one space; 1-255 characters remain."""
    cleaned = " ".join(value.split())
    if not cleaned:
        raise InvalidInput("Give the organization a name.", field="display_name")
    if len(cleaned) > MAX_DISPLAY_NAME:
        raise InvalidInput(
            f"Use at most {MAX_DISPLAY_NAME} characters for the name.", field="display_name"
        )
    return cleaned


@dataclass(frozen=True, slots=True)
class DomainRow:
    """A domain as its settings page shows it: with the TXT record that verifies it, or, when
    another organization has verified it meanwhile (`taken`), as lost: its verification can
    only fail. Which organization is never said."""

    domain: OrganizationDomain
    record_name: str
    taken: bool = False

    @property
    def verified(self) -> bool:
        return self.domain.is_verified

    @property
    def verifiable(self) -> bool:
        return not self.verified and not self.taken


async def domain_rows(session: AsyncSession, organization_id: UUID) -> list[DomainRow]:
    """An organization's domains by name, each with the TXT record that verifies it and
    whether another organization has verified it (one statement)."""
    repository = DomainRepository(session=session, organization_id=organization_id)
    other = aliased(OrganizationDomain)
    taken = (
        exists()
        .where(
            other.domain == OrganizationDomain.domain,
            other.organization_id != OrganizationDomain.organization_id,
            other.verified_at.is_not(None),
        )
        .label("taken")
    )
    statement = repository.statement.add_columns(taken).order_by(
        OrganizationDomain.domain, OrganizationDomain.id
    )
    rows = (await session.execute(statement)).tuples()
    return [
        DomainRow(row, record_name(row.domain), taken=bool(is_taken) and not row.is_verified)
        for row, is_taken in rows
    ]


class OrganizationSettingsService:
    """The name and the domains of the caller's organization, changed by the caller."""

    def __init__(self, session: AsyncSession, caller: Caller) -> None:
        self.session = session
        self.caller = caller
        self.organization = caller.organization

    @property
    def _domains(self) -> DomainRepository:
        return DomainRepository(session=self.session, organization_id=self.organization.id)

    async def _authorize(self, *, lock_organization: bool = False) -> None:
        """`lock_organization`: the write also takes the organization lock (its domains'
        rules span rows); taken here, before the membership, in the order every such write
        takes them."""
        await acting_role(
            self.session,
            self.organization.id,
            self.caller.authority,
            Permission.ORG_MANAGE,
            lock_organization=lock_organization,
        )

    async def domains(self) -> list[DomainRow]:
        return await domain_rows(self.session, self.organization.id)

    async def rename(self, display_name: str) -> Organization:
        name = clean_display_name(display_name)
        # The organization lock before the admin's membership row, as every write that changes
        # the organization's row takes them (a removal of this admin takes them in that order:
        # the other order deadlocks with it).
        await self._authorize(lock_organization=True)
        organization = await self.session.get_one(
            Organization, self.organization.id, populate_existing=True
        )
        previous = organization.display_name
        if previous == name:
            return organization
        organization.display_name = name
        # Auth0's organization carries the display name its sign-in pages show.
        sync_organization_later(self.session, organization.id)
        await AuditService(session=self.session).record(
            AuditAction.ORGANIZATION_RENAMED,
            actor=self.caller.actor,
            organization_id=organization.id,
            target_type="organization",
            target_id=organization.id,
            details={"from": previous, "to": name},
        )
        return organization

    async def add_domain(self, domain: str) -> OrganizationDomain:
        normalize_domain(domain)  # refuse a malformed name before the write begins
        await self._authorize(lock_organization=True)
        return await OrganizationService(session=self.session).add_domain(
            organization_id=self.organization.id, domain=domain, actor=self.caller.actor
        )

    async def _domain(self, domain_id: UUID) -> OrganizationDomain:
        statement = self._domains.statement.where(OrganizationDomain.id == domain_id)
        record = (
            await self.session.execute(statement.execution_options(populate_existing=True))
        ).scalar_one_or_none()
        if record is None:
            raise NotFound("This organization has no such domain.")
        return record

    async def verify_domain(self, domain_id: UUID, *, nameserver: str | None) -> OrganizationDomain:
        """Look the TXT record up with no transaction open, then mark the domain verified in
        a write that re-reads the admin's role and the domain (removed or verified meanwhile:
        nothing to do twice). Verified by another organization, before or meanwhile: a
        Conflict (`mark_domain_verified`)."""
        record = await self._domain(domain_id)
        if record.is_verified:
            return record
        await refuse_if_verified_elsewhere(self.session, record)
        name, token = record.domain, record.verification_token
        if self.session.in_transaction():
            await self.session.commit()  # the read above; writes nothing
        published = await has_token(name, token, nameserver)
        await self._authorize(lock_organization=True)
        record = await self._domain(domain_id)
        if record.is_verified:
            return record
        if not published or record.verification_token != token:
            raise InvalidInput(
                f"No TXT record {record_name(name)} with the expected value was found. "
                "DNS changes can take a few minutes to appear; try again later.",
                field="domain",
            )
        if not await mark_domain_verified(self.session, record):
            return record
        await self._sync_routed_connections()
        await AuditService(session=self.session).record(
            AuditAction.DOMAIN_VERIFIED,
            actor=self.caller.actor,
            organization_id=self.organization.id,
            target_type="domain",
            target_id=record.id,
            details={"domain": record.domain},
        )
        return record

    async def remove_domain(self, domain_id: UUID) -> OrganizationDomain:
        await self._authorize()
        record = await self._domain(domain_id)
        was_verified = record.is_verified
        await self._domains.delete(record.id, auto_commit=False)
        if was_verified:
            await self._sync_routed_connections()
        await AuditService(session=self.session).record(
            AuditAction.DOMAIN_REMOVED,
            actor=self.caller.actor,
            organization_id=self.organization.id,
            target_type="domain",
            target_id=record.id,
            details={"domain": record.domain, "verified": was_verified},
        )
        return record

    async def _sync_routed_connections(self) -> None:
        connections = ConnectionRepository(
            session=self.session, organization_id=self.organization.id
        )
        statement = connections.statement.where(
            EnterpriseConnection.strategy.in_(ROUTED_STRATEGIES)
        )
        for connection in (await self.session.execute(statement)).scalars():
            sync_connection_later(self.session, self.organization.id, connection.id)
