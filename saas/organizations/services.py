"""Organizations, and their email domains and connections.

Domains and connections are tenant rows, read and written through repositories scoped to their
organization. Two questions are deliberately asked across organizations, by name: whether
another organization has verified a domain (one domain routes to one organization) and whether
an Auth0 connection name is taken (names are unique per Auth0 tenant).

Claiming a domain proves nothing, so an unverified claim blocks no one: several organizations
may wait to verify the same domain, and the first whose TXT record is found wins it. The
database decides that race (a partial unique index on verified domains, saas/db/models/domain.py).
"""

from __future__ import annotations

import datetime
import enum
import re
import secrets
from uuid import UUID

from advanced_alchemy.filters import OrderBy, StatementFilter
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import OffsetPagination, SQLAlchemyAsyncRepositoryService
from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session
from sqlalchemy.orm.attributes import set_committed_value

from saas.audit.actions import AuditAction
from saas.audit.services import Actor, AuditService
from saas.auth0.jobs import sync_connection_later, sync_organization_later
from saas.db.lists import offset_page, text_search
from saas.db.locks import lock_organization
from saas.db.models import (
    ConnectionStrategy,
    EnterpriseConnection,
    Membership,
    Organization,
    OrganizationDomain,
    OrganizationStatus,
)
from saas.db.tenant_repository import TenantScopedRepository
from saas.db.unique import insert_unless_taken
from saas.errors import Conflict, InvalidInput, NotFound
from saas.login.session_ending import end_sessions_on_commit
from saas.members.services import parse_role
from saas.organizations.consumer_domains import is_consumer_domain
from saas.organizations.dns_verification import has_token, record_name
from saas.organizations.domains import normalize_domain
from saas.tenancy.permissions import Role

# Auth0 organization `name` rules: lowercase letters, digits, '-' and '_', 1-50 characters,
# starting and ending with a letter or digit. The slug is used as that name.
SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,48}[a-z0-9])?$")
CONNECTION_STRATEGIES = frozenset(strategy.value for strategy in ConnectionStrategy)
# What an organization may give its new members by default: any role but owner.
DEFAULT_ROLES = tuple(role for role in Role if role != Role.OWNER)
# Unverified domains one organization may hold at once. A claim blocks no one, so the only harm
# a careless or hostile admin can do by claiming is to fill rows (and other organizations'
# settings pages, where a domain they have verified shows the claim as taken): ten is more
# than any real onboarding waits to verify at once, and bounds that.
MAX_PENDING_DOMAINS = 10

Session = AsyncSession | async_scoped_session[AsyncSession]


class DomainStanding(enum.Enum):
    """Where a domain stands for one organization that wants to add it."""

    FREE = "free"  # no one has verified it, and it is not on this organization's list
    ON_THIS_ORGANIZATION = "on_this_organization"  # verified or not
    VERIFIED_ELSEWHERE = "verified_elsewhere"


async def domain_standing(session: Session, organization_id: UUID, domain: str) -> DomainStanding:
    """`domain` normalized. Only this organization's own claims and verified claims count:
    another organization's pending claim leaves the domain free."""
    statement = select(OrganizationDomain.organization_id, OrganizationDomain.verified_at).where(
        OrganizationDomain.domain == domain,
        (OrganizationDomain.organization_id == organization_id)
        | OrganizationDomain.verified_at.is_not(None),
    )
    holders = (await session.execute(statement)).all()
    if any(holder == organization_id for holder, _ in holders):
        return DomainStanding.ON_THIS_ORGANIZATION
    if holders:
        return DomainStanding.VERIFIED_ELSEWHERE
    return DomainStanding.FREE


def verified_elsewhere(domain: str) -> Conflict:
    return Conflict(
        f"Another organization has already verified {domain}, so sign-ins from it go there. "
        "If it is yours, contact support; you can remove this claim.",
        field="domain",
    )


async def refuse_if_verified_elsewhere(session: Session, record: OrganizationDomain) -> None:
    """A Conflict when another organization has verified `record`'s domain: this claim can
    never be verified (until that organization removes it)."""
    others = select(
        exists().where(
            OrganizationDomain.domain == record.domain,
            OrganizationDomain.organization_id != record.organization_id,
            OrganizationDomain.verified_at.is_not(None),
        )
    )
    if await session.scalar(others):
        raise verified_elsewhere(record.domain)


async def mark_domain_verified(session: Session, record: OrganizationDomain) -> bool:
    """Mark `record` (read unverified) verified, unless another organization has verified the
    same domain: a Conflict, with the transaction still usable. False when this organization's
    own concurrent verification got there first (nothing to record twice).

    The caller has found the token published, with no transaction open for that lookup. Two
    organizations' verifications of one domain can pass the check below at once; the partial
    unique index on verified domains lets one UPDATE through and makes the other wait for it,
    then fail. That UPDATE runs in a SAVEPOINT, so its failure (which on PostgreSQL aborts the
    whole transaction otherwise) rolls back to it and becomes the same Conflict. The
    organization lock first: on SQLite it opens the write transaction, so that the SAVEPOINT
    nests in it rather than commits on its own when released.
    """
    await lock_organization(session, record.organization_id)
    await refuse_if_verified_elsewhere(session, record)
    now = datetime.datetime.now(datetime.UTC)
    try:
        async with session.begin_nested():
            updated = await session.scalar(
                update(OrganizationDomain)
                .where(
                    OrganizationDomain.id == record.id,
                    OrganizationDomain.organization_id == record.organization_id,
                    OrganizationDomain.verified_at.is_(None),
                )
                .values(verified_at=now, updated_at=now)
                .returning(OrganizationDomain.id)
                .execution_options(synchronize_session=False)
            )
    except IntegrityError:
        # The only constraint this UPDATE can break is the one on verified domains.
        raise verified_elsewhere(record.domain) from None
    if updated is None:
        # Removed by a concurrent request since the caller read it, or verified by one.
        verified_at = await session.scalar(
            select(OrganizationDomain.verified_at).where(OrganizationDomain.id == record.id)
        )
        if verified_at is None:
            raise NotFound("This organization has no such domain.", field="domain")
        set_committed_value(record, "verified_at", verified_at)
        return False
    # What the row now holds, without a second flush of it.
    set_committed_value(record, "verified_at", now)
    set_committed_value(record, "updated_at", now)
    return True


def validate_slug(slug: str) -> str:
    if not SLUG_PATTERN.match(slug):
        raise InvalidInput(
            "Use 1-50 lowercase letters, digits, '-' or '_', starting and ending with a "
            "letter or digit.",
            field="slug",
        )
    return slug


class OrganizationRepository(SQLAlchemyAsyncRepository[Organization]):
    model_type = Organization


class DomainRepository(TenantScopedRepository[OrganizationDomain]):
    model_type = OrganizationDomain


class ConnectionRepository(TenantScopedRepository[EnterpriseConnection]):
    model_type = EnterpriseConnection


class OrganizationService(SQLAlchemyAsyncRepositoryService[Organization, OrganizationRepository]):
    repository_type = OrganizationRepository

    @property
    def _audit(self) -> AuditService:
        return AuditService(session=self.repository.session)

    def _domains(self, organization_id: UUID) -> DomainRepository:
        return DomainRepository(session=self.repository.session, organization_id=organization_id)

    def _connections(self, organization_id: UUID) -> ConnectionRepository:
        return ConnectionRepository(
            session=self.repository.session, organization_id=organization_id
        )

    async def domain_standing(self, organization_id: UUID, domain: str) -> DomainStanding:
        """Whether `organization_id` may add `domain` (any spelling): FREE unless it is on its
        own list already or another organization has verified it. Another organization's
        unverified claim does not count: claiming proves nothing."""
        return await domain_standing(
            self.repository.session, organization_id, normalize_domain(domain)
        )

    async def pending_domain_count(self, organization_id: UUID) -> int:
        statement = select(func.count(OrganizationDomain.id)).where(
            OrganizationDomain.organization_id == organization_id,
            OrganizationDomain.verified_at.is_(None),
        )
        return int(await self.repository.session.scalar(statement) or 0)

    async def connection_name_is_taken(self, name: str) -> bool:
        """By any organization: Auth0 connection names are unique per Auth0 tenant."""
        statement = select(exists().where(EnterpriseConnection.auth0_connection_name == name))
        return bool(await self.repository.session.scalar(statement))

    async def get_by_slug(self, slug: str) -> Organization:
        organization = await self.repository.get_one_or_none(slug=slug)
        if organization is None:
            raise NotFound("No such organization.")
        return organization

    async def create_organization(
        self,
        *,
        slug: str,
        display_name: str,
        actor: Actor,
        default_role: Role | str = Role.MEMBER,
        jit_provisioning: bool = False,
        require_sso: bool = False,
        auth0_org_id: str | None = None,
        organization_id: UUID | None = None,
    ) -> Organization:
        """`organization_id`: a fixed id (the demo seed's, see saas/demo/data.py)."""
        slug = validate_slug(slug.strip())
        display_name = display_name.strip()
        if not display_name or len(display_name) > 255:
            raise InvalidInput(
                "A display name of 1-255 characters is required.", field="display_name"
            )
        role = parse_role(default_role)
        if role not in DEFAULT_ROLES:
            raise InvalidInput("The default role cannot be owner.", field="default_role")
        taken = Conflict(f"The slug {slug!r} is taken.", field="slug")
        if await self.repository.exists(slug=slug):
            raise taken
        # Two onboardings of one slug can both pass the check above: the unique constraint
        # decides, and the second is refused as if it had come later (see saas/db/unique.py).
        organization = await insert_unless_taken(
            self.repository.session,
            Organization,
            {
                "slug": slug,
                "display_name": display_name,
                "default_role": role.value,
                "jit_provisioning": jit_provisioning,
                "require_sso": require_sso,
                "auth0_org_id": auth0_org_id,
                **({"id": organization_id} if organization_id is not None else {}),
            },
            unique=("slug",),
        )
        if organization is None:
            raise taken
        if auth0_org_id is None:
            sync_organization_later(self.repository.session, organization.id)
        await self._audit.record(
            AuditAction.ORGANIZATION_CREATED,
            actor=actor,
            organization_id=organization.id,
            target_type="organization",
            target_id=organization.id,
            details={"slug": slug},
        )
        return organization

    async def add_domain(
        self, *, organization_id: UUID, domain: str, actor: Actor, verified: bool = False
    ) -> OrganizationDomain:
        """Claim `domain` (any spelling) for the organization, to verify by DNS; `verified`
        (seed, tests) skips that proof. Refused when it is on the organization's list already,
        when another organization has verified it, or when the organization already waits to
        verify MAX_PENDING_DOMAINS domains. Another organization's unverified claim of the same
        domain is no reason: the first to verify wins it (`mark_domain_verified`)."""
        normalized = normalize_domain(domain)
        if is_consumer_domain(normalized):
            raise InvalidInput(
                f"{normalized} is a public mailbox provider; it cannot route to one organization.",
                field="domain",
            )
        session = self.repository.session
        # Serializes this organization's adds: the cap below counts committed rows only.
        await lock_organization(session, organization_id)
        standing = await domain_standing(session, organization_id, normalized)
        on_list = Conflict(
            f"{normalized} is already claimed by this organization.",
            field="domain",
        )
        taken = Conflict(
            f"{normalized} is already claimed: another organization has verified it.",
            field="domain",
        )
        if standing is DomainStanding.ON_THIS_ORGANIZATION:
            raise on_list
        if standing is DomainStanding.VERIFIED_ELSEWHERE:
            raise taken
        if not verified and await self.pending_domain_count(organization_id) >= MAX_PENDING_DOMAINS:
            raise Conflict(
                f"This organization already has {MAX_PENDING_DOMAINS} domains waiting to be "
                "verified. Verify or remove one of them before adding another.",
                field="domain",
            )
        values = {
            "organization_id": organization_id,
            "domain": normalized,
            "verification_token": secrets.token_urlsafe(24),
            "verified_at": datetime.datetime.now(datetime.UTC) if verified else None,
        }
        # The lock above keeps a second add to this organization out until this one commits;
        # what can still race is another organization's verified add (its conflict target).
        if verified:
            record = await insert_unless_taken(
                session,
                OrganizationDomain,
                values,
                unique=("domain",),
                index_where=OrganizationDomain.verified_at.is_not(None),
            )
        else:
            record = await insert_unless_taken(
                session, OrganizationDomain, values, unique=("organization_id", "domain")
            )
        if record is None:  # taken by a concurrent request after the check above
            raise taken if verified else on_list
        await self._audit.record(
            AuditAction.DOMAIN_ADDED,
            actor=actor,
            organization_id=organization_id,
            target_type="domain",
            target_id=record.id,
            details={"domain": normalized, "verified": verified},
        )
        return record

    async def verify_domain(
        self, *, organization_id: UUID, domain: str, actor: Actor, nameserver: str | None
    ) -> OrganizationDomain:
        """Mark the domain verified when its TXT record carries the token; only then does it
        route logins. The lookup runs with no transaction open: call this with nothing written
        yet in the session's transaction, whose reads it commits first."""
        session = self.repository.session
        domains = self._domains(organization_id)
        normalized = normalize_domain(domain)
        record = await domains.get_one_or_none(domain=normalized)
        if record is None:
            raise NotFound("This organization has no such domain.", field="domain")
        if record.verified_at is not None:
            return record
        await refuse_if_verified_elsewhere(session, record)  # no lookup that can only fail
        token = record.verification_token
        await session.commit()  # the reads above; writes nothing
        published = await has_token(normalized, token, nameserver)
        statement = domains.statement.where(OrganizationDomain.domain == normalized)
        record = (
            await session.execute(statement.execution_options(populate_existing=True))
        ).scalar_one_or_none()
        if record is None:
            raise NotFound("This organization has no such domain.", field="domain")
        if record.verified_at is not None:
            return record
        if not published or record.verification_token != token:
            raise InvalidInput(
                f"No TXT record {record_name(normalized)} with the expected value was found. "
                "DNS changes can take a few minutes to appear.",
                field="domain",
            )
        if not await mark_domain_verified(session, record):
            return record
        for connection in await self.connections_of(organization_id):
            if connection.strategy in {"samlp", "oidc"}:
                sync_connection_later(session, organization_id, connection.id)
        await self._audit.record(
            AuditAction.DOMAIN_VERIFIED,
            actor=actor,
            organization_id=organization_id,
            target_type="domain",
            target_id=record.id,
            details={"domain": record.domain},
        )
        return record

    async def set_status(
        self, *, organization_id: UUID, status: OrganizationStatus, actor: Actor
    ) -> Organization:
        organization = await self.repository.get(organization_id)
        if organization.status != status.value:
            organization.status = status.value
            organization = await self.repository.update(organization, auto_commit=False)
            await self._audit.record(
                AuditAction.ORGANIZATION_SUSPENDED
                if status == OrganizationStatus.SUSPENDED
                else AuditAction.ORGANIZATION_REACTIVATED,
                actor=actor,
                organization_id=organization_id,
                target_type="organization",
                target_id=organization_id,
            )
            if status == OrganizationStatus.SUSPENDED:
                members = await self.repository.session.scalars(
                    select(Membership.user_id).where(Membership.organization_id == organization_id)
                )
                await end_sessions_on_commit(
                    self.repository.session,
                    user_ids=list(members),
                    organization_id=organization_id,
                    actor=actor,
                    reason="organization_suspended",
                )
        return organization

    async def overview(
        self, *, search: str | None = None, limit: int = 50, offset: int = 0
    ) -> OffsetPagination[Organization]:
        """Every organization, for operators, by display name (ties by id), searched by slug
        and display name. Each carries its `member_count`."""
        filters: list[StatementFilter] = [
            OrderBy(Organization.display_name),
            OrderBy(Organization.id),
        ]
        if search:
            filters.append(text_search({"slug", "display_name"}, search.strip()))
        return await offset_page(self.repository, *filters, limit=limit, offset=offset)

    async def domains_of(self, organization_id: UUID) -> list[OrganizationDomain]:
        return await self._domains(organization_id).get_many()

    async def connections_of(self, organization_id: UUID) -> list[EnterpriseConnection]:
        return await self._connections(organization_id).get_many()

    async def add_connection(
        self,
        *,
        organization_id: UUID,
        name: str,
        strategy: str,
        display_name: str,
        actor: Actor,
        auth0_connection_id: str | None = None,
    ) -> EnterpriseConnection:
        if strategy not in CONNECTION_STRATEGIES:
            raise InvalidInput(f"Unsupported strategy {strategy!r}.", field="strategy")
        exists = Conflict(f"A connection named {name!r} exists already.", field="name")
        if await self.connection_name_is_taken(name):
            raise exists
        connection = await insert_unless_taken(
            self.repository.session,
            EnterpriseConnection,
            {
                "organization_id": organization_id,
                "auth0_connection_name": name,
                "auth0_connection_id": auth0_connection_id,
                "strategy": strategy,
                "display_name": display_name,
            },
            unique=("auth0_connection_name",),
        )
        if connection is None:  # added by a concurrent request after the check above
            raise exists
        sync_organization_later(self.repository.session, organization_id)
        await self._audit.record(
            AuditAction.CONNECTION_ADDED,
            actor=actor,
            organization_id=organization_id,
            target_type="connection",
            target_id=connection.id,
            details={"name": name, "strategy": strategy},
        )
        return connection
