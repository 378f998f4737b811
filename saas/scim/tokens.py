"""SCIM bearer tokens, and the Directory sync settings their organization's admins use.

A token is 32 random bytes (256 bits) from `secrets`, shown once and kept only as its SHA-256.
A plain, fast, unsalted hash is right here and a password hash (argon2) is not: a password is
low-entropy and must be slow to guess; a 256-bit random token cannot be guessed at any speed,
so a stolen table of hashes yields nothing, and a fast hash lets every SCIM request find its
token with one indexed lookup instead of a deliberate 50 ms of work per request.

Owners and admins (org:manage) create, name, rotate and revoke tokens and map the directory's
groups to roles; each write re-reads that authority inside its own transaction. A token records
the role of the member who created (or last rotated) it, and its directory writes act with at
most that role, and at most the role that member still holds (saas/scim/services.py): an
admin's token cannot remove, deactivate or demote an owner, nor make anyone an owner.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.actions import AuditAction
from saas.audit.services import AuditService
from saas.db.locks import lock_organization
from saas.db.models import (
    DirectoryGroup,
    DirectorySyncError,
    DirectoryUser,
    Membership,
    ScimToken,
)
from saas.errors import InvalidInput, NotFound
from saas.tenancy.authority import acting_role
from saas.tenancy.caller import Caller
from saas.tenancy.permissions import Permission, Role

TOKEN_PREFIX = "scim_"  # noqa: S105  (a prefix that names what a token is for, not a secret)
MAX_TOKEN_NAME = 100
MAX_ACTIVE_TOKENS = 10
RECENT_ERRORS = 10


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def clean_token_name(value: str) -> str:
    name = " ".join(value.split())
    if not name:
        raise InvalidInput(
            "Name the token after the system that will use it, like “Okta”.", field="name"
        )
    if len(name) > MAX_TOKEN_NAME:
        raise InvalidInput(f"Use at most {MAX_TOKEN_NAME} characters for the name.", field="name")
    return name


def parse_mapped_role(value: str) -> Role | None:
    if not value.strip():
        return None
    try:
        return Role(value.strip())
    except ValueError:
        raise InvalidInput("Choose one of the roles offered.", field="role") from None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: ScimToken
    secret: str  # shown once, on the page that answers its creation or rotation


@dataclass(frozen=True, slots=True)
class DirectoryStatus:
    tokens: list[ScimToken]
    groups: list[DirectoryGroup]
    active_users: int
    inactive_users: int
    managed_members: int
    last_request_at: datetime.datetime | None
    errors: list[DirectorySyncError]


class DirectorySettingsService:
    """The caller's organization's SCIM tokens and group -> role mappings."""

    def __init__(self, session: AsyncSession, caller: Caller) -> None:
        self.session = session
        self.caller = caller

    @property
    def _organization_id(self) -> UUID:
        return self.caller.organization_id

    async def _authorize(self) -> Role | None:
        return await acting_role(
            self.session, self._organization_id, self.caller.authority, Permission.ORG_MANAGE
        )

    async def status(self) -> DirectoryStatus:
        org = self._organization_id
        tokens = list(
            await self.session.scalars(
                select(ScimToken)
                .where(ScimToken.organization_id == org)
                .order_by(ScimToken.revoked_at.is_not(None), ScimToken.created_at.desc())
            )
        )
        groups = list(
            await self.session.scalars(
                select(DirectoryGroup)
                .where(DirectoryGroup.organization_id == org)
                .order_by(DirectoryGroup.display_name_key)
                .limit(500)
            )
        )
        counted = await self.session.execute(
            select(DirectoryUser.active, func.count())
            .where(DirectoryUser.organization_id == org)
            .group_by(DirectoryUser.active)
        )
        counts = {bool(active): int(number) for active, number in counted.all()}
        managed = await self.session.scalar(
            select(func.count()).where(
                Membership.organization_id == org, Membership.directory_managed.is_(True)
            )
        )
        errors = list(
            await self.session.scalars(
                select(DirectorySyncError)
                .where(DirectorySyncError.organization_id == org)
                .order_by(DirectorySyncError.created_at.desc(), DirectorySyncError.id.desc())
                .limit(RECENT_ERRORS)
            )
        )
        used = [t.last_used_at for t in tokens if t.last_used_at is not None]
        return DirectoryStatus(
            tokens=tokens,
            groups=groups,
            active_users=int(counts.get(True, 0)),
            inactive_users=int(counts.get(False, 0)),
            managed_members=int(managed or 0),
            last_request_at=max(used) if used else None,
            errors=errors,
        )

    async def create_token(self, name: str) -> IssuedToken:
        cleaned = clean_token_name(name)
        role = await self._authorize()
        active = await self.session.scalar(
            select(func.count()).where(
                ScimToken.organization_id == self._organization_id, ScimToken.revoked_at.is_(None)
            )
        )
        if (active or 0) >= MAX_ACTIVE_TOKENS:
            raise InvalidInput(
                f"This organization has {MAX_ACTIVE_TOKENS} active tokens; revoke one first.",
                field="name",
            )
        secret = new_token()
        token = ScimToken(
            organization_id=self._organization_id,
            name=cleaned,
            token_hash=hash_token(secret),
            hint=secret[-4:],
            created_by_id=self.caller.actor.user_id,
            created_by_role=role.value if role is not None else None,
        )
        self.session.add(token)
        await self.session.flush()
        await self._audit(AuditAction.SCIM_TOKEN_CREATED, token)
        return IssuedToken(token, secret)

    async def _token(self, token_id: UUID) -> ScimToken:
        token = (
            await self.session.execute(
                select(ScimToken)
                .where(ScimToken.id == token_id, ScimToken.organization_id == self._organization_id)
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if token is None or token.revoked_at is not None:
            raise NotFound("This organization has no such active token.")
        return token

    async def rotate_token(self, token_id: UUID) -> IssuedToken:
        """A new secret for the same token (name, history): the old one stops working now.
        The token acts from now on with the authority of the member who rotated it.

        Under the organization's lock, as a SCIM write is: a write with the old secret either
        commits before the rotation or waits for it and is refused."""
        await lock_organization(self.session, self._organization_id)
        role = await self._authorize()
        token = await self._token(token_id)
        token.created_by_id = self.caller.actor.user_id
        token.created_by_role = role.value if role is not None else None
        secret = new_token()
        token.token_hash = hash_token(secret)
        token.hint = secret[-4:]
        token.rotated_at = datetime.datetime.now(datetime.UTC)
        await self.session.flush()
        await self._audit(AuditAction.SCIM_TOKEN_ROTATED, token)
        return IssuedToken(token, secret)

    async def revoke_token(self, token_id: UUID) -> ScimToken:
        await lock_organization(self.session, self._organization_id)  # as rotate_token
        await self._authorize()
        token = await self._token(token_id)
        token.revoked_at = datetime.datetime.now(datetime.UTC)
        await self.session.flush()
        await self._audit(AuditAction.SCIM_TOKEN_REVOKED, token)
        return token

    async def map_group(self, group_id: UUID, role: Role | None) -> DirectoryGroup:
        """Set the role a directory group gives its members, and apply it to them now."""
        from saas.scim.services import DirectoryService

        actor_role = await acting_role(
            self.session,
            self._organization_id,
            self.caller.authority,
            Permission.ORG_MANAGE,
            lock_organization=True,  # the roles it changes may be owners'
        )
        directory = DirectoryService(self.session, self.caller.organization, self.caller.actor)
        return await directory.map_group(group_id, role, actor_role=actor_role)

    async def _audit(self, action: AuditAction, token: ScimToken) -> None:
        await AuditService(session=self.session).record(
            action,
            actor=self.caller.actor,
            organization_id=self._organization_id,
            target_type="scim_token",
            target_id=token.id,
            details={"name": token.name},
        )
