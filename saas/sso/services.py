"""Self-service SSO: an organization's own SAML or OIDC connection, saved only once validated,
created at Auth0 and enabled on the organization through the outbox. The admin's `org:manage`
is re-read inside the write's transaction, after any network call validation made."""

from __future__ import annotations

import re
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.actions import AuditAction
from saas.audit.services import AuditService
from saas.auth0.jobs import CONNECTION_TARGET, disable_connection_later, sync_connection_later
from saas.auth0.sync_state import SyncState, retry_failed, sync_state
from saas.config import Settings
from saas.db.models import EnterpriseConnection, Membership, Organization, User
from saas.errors import NotFound
from saas.organizations.services import ConnectionRepository
from saas.sso.secrets import encrypt_secret
from saas.sso.validation import ValidatedConnection
from saas.tenancy.authority import acting_role
from saas.tenancy.caller import Caller
from saas.tenancy.permissions import Permission

SELF_SERVICE_STRATEGIES = ("samlp", "oidc")


def connection_name(organization: Organization, strategy: str) -> str:
    """Auth0 connection names are unique per Auth0 tenant, letters and digits with single
    hyphens. Slugs like `acme_corp` and `acme-corp` would collide, so a piece of the
    organization's id makes the name its own (and the outbox refuses to adopt a connection
    that another organization created)."""
    base = re.sub(r"[^a-z0-9]+", "-", organization.slug.lower()).strip("-") or "org"
    kind = "saml" if strategy == "samlp" else "oidc"
    return f"{base[:100]}-{kind}-{organization.id.hex[-6:]}"


class SsoService:
    """The SSO connection of the caller's organization, changed by the caller."""

    def __init__(self, session: AsyncSession, caller: Caller, settings: Settings) -> None:
        self.session = session
        self.caller = caller
        self.organization = caller.organization
        self.settings = settings

    @property
    def _connections(self) -> ConnectionRepository:
        return ConnectionRepository(session=self.session, organization_id=self.organization.id)

    async def current(self) -> EnterpriseConnection | None:
        statement = (
            self._connections.statement.where(
                EnterpriseConnection.strategy.in_(SELF_SERVICE_STRATEGIES)
            )
            .order_by(EnterpriseConnection.created_at)
            .limit(1)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def sync_of(self, connection: EnterpriseConnection) -> SyncState | None:
        """Whether Auth0 has the connection as saved: from its outbox jobs, no Auth0 call."""
        return await sync_state(
            self.session, self.organization.id, CONNECTION_TARGET, connection.id
        )

    async def role_of_sub(self, sub: str) -> str | None:
        """The role in this organization of the person Auth0 knows as `sub`, if any (what a
        test sign-in's result says about them)."""
        statement = (
            select(Membership.role)
            .join(User, User.id == Membership.user_id)
            .where(Membership.organization_id == self.organization.id, User.sub == sub)
        )
        return await self.session.scalar(statement)

    async def retry(self, job_id: UUID) -> None:
        """Queue one of this organization's failed jobs again (never another's: the job's
        organization is part of the query), with org:manage re-read in this transaction."""
        await self._authorize()
        await retry_failed(self.session, job_id, self.organization.id)

    async def _authorize(self) -> None:
        await acting_role(
            self.session, self.organization.id, self.caller.authority, Permission.ORG_MANAGE
        )

    async def save(
        self,
        validated: ValidatedConnection,
        *,
        display_name: str,
        assign_membership_on_login: bool,
    ) -> EnterpriseConnection:
        await self._authorize()
        connection = await self.current()
        created = connection is None
        # Another strategy is another Auth0 connection: the old one goes, a new one is made.
        fresh = connection is None or connection.strategy != validated.strategy
        if connection is None or connection.strategy != validated.strategy:
            if connection is not None:
                await self._remove(connection)
            connection = EnterpriseConnection(
                auth0_connection_name=connection_name(self.organization, validated.strategy),
                strategy=validated.strategy,
            )
        connection.display_name = display_name.strip()[:255] or self.organization.display_name
        connection.options = validated.options
        connection.assign_membership_on_login = assign_membership_on_login
        if validated.secret:
            connection.secret_ciphertext = encrypt_secret(self.settings, validated.secret)
        write = self._connections.add if fresh else self._connections.update
        connection = await write(connection, auto_commit=False)
        sync_connection_later(self.session, self.organization.id, connection.id)
        await AuditService(session=self.session).record(
            AuditAction.SSO_CREATED if created else AuditAction.SSO_UPDATED,
            actor=self.caller.actor,
            organization_id=self.organization.id,
            target_type="connection",
            target_id=connection.id,
            details={"strategy": validated.strategy, **validated.summary},
        )
        return connection

    async def _remove(self, connection: EnterpriseConnection) -> None:
        # Also without an Auth0 id: its create may have reached Auth0 all the same.
        disable_connection_later(
            self.session,
            self.organization.id,
            connection.auth0_connection_id,
            connection.auth0_connection_name,
        )
        await self._connections.delete(connection.id, auto_commit=False)

    async def delete(self) -> None:
        await self._authorize()
        connection = await self.current()
        if connection is None:
            raise NotFound("This organization has no SSO connection.")
        await self._remove(connection)
        await AuditService(session=self.session).record(
            AuditAction.SSO_DELETED,
            actor=self.caller.actor,
            organization_id=self.organization.id,
            target_type="connection",
            target_id=connection.id,
            details={"name": connection.auth0_connection_name},
        )


def connection_id_of(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)
