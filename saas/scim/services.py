"""Directory sync: what a SCIM request does to one organization's people, groups and members.

The organization is the one the request's bearer token belongs to (saas/scim/controllers.py),
bound here once; every query names it. The SCIM resources are parsed, patched and rendered by
`scim2-models`; this module decides what they mean:

- A directory user is linked to a `User`: the one whose email is the directory's primary
  email when that email is at one of the organization's **verified** domains (the organization
  proves it controls those mailboxes; any other address is an unverified claim and links to
  nobody), else a new user of its own, known to Auth0 only once they sign in.
- An active directory user has a membership, marked `directory_managed`, with the highest role
  its mapped groups give, else the organization's default role. Deactivation (`active: false`)
  or deletion removes the membership through `MembershipService` (the last-owner rule, the
  audit event, the Auth0 outbox job, the end of the person's sessions); reactivation restores
  it.
- Leaving a mapped group recomputes the role: the next highest mapped role, or the default.
- Every write takes the organization's lock first (saas/db/locks.py), as every other
  owner-affecting change does, so the last-owner rule holds against racing requests; the
  database's unique constraints hold userName, externalId and group names.
- A token's writes act with the role of the member who created or last rotated it, re-read
  under that lock (saas/tenancy/authority.py): at most the role recorded on the token, and at
  most the role that member holds now; one who no longer manages the organization leaves a
  token that changes nothing until someone who does rotates it. So an admin's token cannot
  remove, deactivate or demote an owner, nor make anyone an owner (DESIGN's member rules).
- A directory user is linked at provisioning only to a user who is already a member of the
  organization; anyone else gets a placeholder of this organization's own, which their first
  sign-in with a verified email claims. A placeholder is this organization's alone: another
  organization's directory never links to it, renames it or deletes it.
- A request carries at most MAX_OPERATIONS PATCH operations and MAX_MEMBERS group members.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from scim2_models import (
    Context,
    EnterpriseUser,
    ForbiddenException,
    Group,
    InvalidFilterException,
    InvalidValueException,
    MutabilityException,
    NotFoundException,
    PatchOp,
    ScimFilter,
    ScimPolicy,
    TooManyException,
    UnauthorizedException,
    UniquenessException,
    User,
)
from scim2_models.path.expressions import AttrPath, CompareOperator, Comparison, ValuePath
from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.actions import AuditAction
from saas.audit.services import Actor, AuditService
from saas.auth0.jobs import sync_member_later
from saas.db.locks import lock_organization
from saas.db.models import (
    DirectoryGroup,
    DirectoryGroupMember,
    DirectoryUser,
    Membership,
    Organization,
    OrganizationDomain,
    ScimToken,
)
from saas.db.models import User as AppUser
from saas.errors import DomainError, Forbidden, InvalidInput, LastOwnerError, NotFound
from saas.members.removals import forget_removal
from saas.members.services import MembershipService
from saas.organizations.domains import normalize_email
from saas.tenancy.authority import require_permission_in_txn
from saas.tenancy.permissions import ROLE_RANK, Permission, Role
from saas.tenancy.policy import (
    check_may_grant,
    grant_refusal,
    removal_refusal,
    role_change_refusal,
)

ScimUser = User[EnterpriseUser]
# What Okta and Entra ID send beyond the strict reading: Entra's `remove` with a value that
# selects the members to remove, a filter path for an email type not there yet (`add` creates
# it), and attributes of extensions this service does not declare (dropped, not refused).
POLICY = ScimPolicy(
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
    unknown=ScimPolicy.Unknown.ignore,
)
MAX_PAGE = 200
DEFAULT_PAGE = 100
# startIndex beyond this reads as this (an OFFSET the databases hold).
MAX_START_INDEX = 2**31 - 1
# Per request: PATCH operations, and group members sent (POST/PUT members, PATCH values).
MAX_OPERATIONS = 1000
MAX_MEMBERS = 1000
# Ids per IN (...) list: well under asyncpg's 32767 bound parameters and SQLite's.
IN_BATCH = 1000
# Placeholder identity of a person the directory created before their first sign-in.
PLACEHOLDER_SUB = "scim|"


def is_placeholder(user: AppUser) -> bool:
    return user.sub.startswith(PLACEHOLDER_SUB)


def _is_placeholder_of(user: AppUser, organization_id: UUID) -> bool:
    return user.sub.startswith(f"{PLACEHOLDER_SUB}{organization_id}|")


class DirectoryRefused(Exception):
    """A directory change the member rules refuse. The controller answers with `status` and
    `detail`, and audits the refusal in a transaction of its own."""

    status = 409
    reason = "refused"
    detail = "This change is refused."

    def __init__(self, user_id: UUID, change: str, detail: str | None = None) -> None:
        if detail is not None:
            self.detail = detail
        super().__init__(self.detail)
        self.user_id = user_id
        self.change = change


class LastOwnerRefused(DirectoryRefused):
    """The directory asked to demote or remove the organization's last owner (409)."""

    reason = "last_owner"
    detail = (
        "This change would leave the organization without an owner: its last owner cannot be "
        "deactivated, deleted or demoted by the directory. Make someone else an owner first."
    )


class OwnerProtected(DirectoryRefused):
    """The token acts with a role that may not make this change (an admin's token and an
    owner, or the owner role): 403."""

    status = 403
    reason = "not_allowed"


def _beyond(authority: Role, what: str) -> str:
    return (
        f"This SCIM token acts with the {authority} role of the member who created or last "
        f"rotated it, and an {authority} cannot {what}. An owner can make this change, or "
        "rotate the token in Directory sync settings so that it acts as an owner."
    )


def _batches(ids: Iterable[UUID]) -> list[list[UUID]]:
    values = list(ids)
    return [values[i : i + IN_BATCH] for i in range(0, len(values), IN_BATCH)]


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    start_index: int
    rows: list[Any]


def _rank(role: Role) -> int:
    return ROLE_RANK[role]


def _key(value: str) -> str:
    return value.strip().casefold()


def _primary_email(model: ScimUser) -> str | None:
    emails = model.emails or []
    chosen = next((e for e in emails if e.primary), emails[0] if emails else None)
    value = chosen.value if chosen is not None else None
    if not value and model.user_name and "@" in model.user_name:
        value = model.user_name
    if not value:
        return None
    try:
        return normalize_email(str(value))
    except InvalidInput:
        return None


def _bounded(start_index: int | None, count: int | None) -> tuple[int, int]:
    start = min(max(1, start_index or 1), MAX_START_INDEX)
    size = DEFAULT_PAGE if count is None else max(0, min(count, MAX_PAGE))
    return start, size


def _eq_filter(text: str, model: Any, allowed: dict[str, str]) -> tuple[str, str]:
    """The one `attribute eq "value"` comparison the filter is, as (column, value); anything
    else is refused as a filter this service does not support."""
    try:
        parsed = ScimFilter[model](text)
    except InvalidFilterException:
        raise
    except Exception as error:  # a value the attribute cannot hold, etc.
        raise InvalidFilterException(detail=str(error)) from None
    node = parsed.ast
    if isinstance(node, ValuePath) and isinstance(node.val_filter, Comparison):
        inner = node.val_filter
        node = Comparison(
            AttrPath(node.attr_path.attr, inner.attr_path.attr, node.attr_path.uri),
            inner.op,
            inner.value,
        )
    if (
        isinstance(node, Comparison)
        and node.op == CompareOperator.eq
        and isinstance(node.value, str)
    ):
        name = node.attr_path.attr.casefold()
        if node.attr_path.sub_attr:
            name += "." + node.attr_path.sub_attr.casefold()
        if name in allowed:
            return allowed[name], node.value
    supported = ", ".join(f'{a} eq "…"' for a in allowed.values())
    raise InvalidFilterException(detail=f"Only these filters are supported: {supported}.")


USER_FILTERS = {"username": "userName", "externalid": "externalId", "emails.value": "emails.value"}
GROUP_FILTERS = {"displayname": "displayName", "externalid": "externalId"}


class DirectoryService:
    """One organization's directory, changed by its SCIM token (or, for group mappings, by its
    admins from the Directory sync page)."""

    def __init__(
        self,
        session: AsyncSession,
        organization: Organization,
        actor: Actor,
        *,
        token_id: UUID | None = None,
        token_hash: str | None = None,
    ) -> None:
        self.session = session
        self.organization = organization
        self.actor = actor
        self.members = MembershipService(session=session)
        # The SCIM token the request carries (None: the settings page or the platform).
        self.token_id = token_id
        # The hash of the secret it presented: a rotation that commits before the write's
        # authority is read leaves the old secret nothing to act with.
        self.token_hash = token_hash
        # The role the directory's writes act with; None is the platform itself.
        self.authority: Role | None = None

    @property
    def _org(self) -> UUID:
        return self.organization.id

    async def _audit(
        self, action: AuditAction, target_type: str, target_id: UUID, **details: Any
    ) -> None:
        await AuditService(session=self.session).record(
            action,
            actor=self.actor,
            organization_id=self._org,
            target_type=target_type,
            target_id=target_id,
            details=details,
        )

    async def _lock(self) -> None:
        await lock_organization(self.session, self._org)
        if self.token_id is not None:
            self.authority = await self._token_authority(self.token_id)

    async def _token_authority(self, token_id: UUID) -> Role | None:
        """The role this token's writes act with, read under the organization's lock: the
        lower of the role recorded when it was created or rotated and the role its member
        holds now; refused when that member no longer manages the organization."""
        token = (
            await self.session.execute(
                select(ScimToken)
                .where(ScimToken.id == token_id, ScimToken.organization_id == self._org)
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if (
            token is None
            or token.revoked_at is not None
            or (self.token_hash is not None and token.token_hash != self.token_hash)
        ):
            raise UnauthorizedException(detail="This SCIM token is not valid, or was revoked.")
        if token.created_by_role is None:
            return None  # issued by the platform itself (seed, CLI, operator console)
        recorded = Role(token.created_by_role)
        membership: Membership | None = None
        if token.created_by_id is not None:  # else: that member's account was deleted
            try:
                membership = await require_permission_in_txn(
                    self.session,
                    self._org,
                    token.created_by_id,
                    Permission.ORG_MANAGE,
                    lock_organization=True,
                )
            except DomainError:
                membership = None
        if membership is None:
            raise ForbiddenException(
                detail=(
                    "The member who created or last rotated this SCIM token no longer manages "
                    "this organization, so the token cannot change its directory. An owner or "
                    "admin can rotate it in Directory sync settings."
                )
            )
        live = Role(membership.role)
        return live if _rank(live) < _rank(recorded) else recorded

    # ---- users: reading ------------------------------------------------------------------

    async def user(self, user_id: str) -> DirectoryUser:
        try:
            key = UUID(user_id)
        except ValueError:
            raise NotFoundException(detail=f"No user {user_id!r} in this directory.") from None
        row = (
            await self.session.execute(
                select(DirectoryUser)
                .where(DirectoryUser.organization_id == self._org, DirectoryUser.id == key)
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFoundException(detail=f"No user {user_id!r} in this directory.")
        return row

    async def groups_of(self, users: Sequence[DirectoryUser]) -> dict[UUID, list[DirectoryGroup]]:
        ids = [u.id for u in users]
        found: dict[UUID, list[DirectoryGroup]] = {i: [] for i in ids}
        if not ids:
            return found
        rows = await self.session.execute(
            select(DirectoryGroupMember.directory_user_id, DirectoryGroup)
            .join(DirectoryGroup, DirectoryGroup.id == DirectoryGroupMember.group_id)
            .where(
                DirectoryGroupMember.organization_id == self._org,
                DirectoryGroupMember.directory_user_id.in_(ids),
            )
        )
        for user_id, group in rows.tuples():
            found[user_id].append(group)
        return found

    async def list_users(
        self, filter_text: str | None, start_index: int | None, count: int | None
    ) -> Page:
        start, size = _bounded(start_index, count)
        statement = select(DirectoryUser).where(DirectoryUser.organization_id == self._org)
        if filter_text:
            column, value = _eq_filter(filter_text, User, USER_FILTERS)
            if column == "userName":
                statement = statement.where(DirectoryUser.user_name_key == _key(value))
            elif column == "externalId":
                statement = statement.where(DirectoryUser.external_id == value)
            else:
                try:
                    email = normalize_email(value)
                except InvalidInput:
                    return Page(0, start, [])
                statement = statement.where(DirectoryUser.email == email)
        total = await self.session.scalar(select(func.count()).select_from(statement.subquery()))
        rows: list[DirectoryUser] = []
        if size:
            rows = list(
                await self.session.scalars(
                    statement.order_by(DirectoryUser.id).offset(start - 1).limit(size)
                )
            )
        return Page(int(total or 0), start, rows)

    # ---- users: writing ------------------------------------------------------------------

    async def create_user(self, model: ScimUser) -> DirectoryUser:
        await self._lock()
        user_name = (model.user_name or "").strip()
        if not user_name:
            raise InvalidValueException(detail="userName is required.")
        await self._check_unique(user_name, model.external_id, exclude=None)
        email = _primary_email(model)
        row_id = uuid.uuid4()
        person = await self._person_for(email, user_name, model, row_id)
        row = DirectoryUser(
            id=row_id,
            organization_id=self._org,
            user_id=person.id,
            user_name=user_name,
            user_name_key=_key(user_name),
            external_id=model.external_id,
            email=email,
            active=model.active is not False,
            attributes=_stored(model),
        )
        self.session.add(row)
        await self.session.flush()
        await self._audit(
            AuditAction.DIRECTORY_USER_PROVISIONED,
            "user",
            person.id,
            user_name=user_name,
            active=row.active,
        )
        if row.active:
            await self._grant(row)
        return row

    async def replace_user(self, user_id: str, model: ScimUser) -> DirectoryUser:
        await self._lock()
        row = await self.user(user_id)
        return await self._save(row, model)

    async def patch_user(self, user_id: str, patch: PatchOp[ScimUser]) -> DirectoryUser:
        _check_operations(patch)
        await self._lock()
        row = await self.user(user_id)
        model = self.model_of(row)
        with POLICY:
            patch.patch(model)
        return await self._save(row, model)

    async def delete_user(self, user_id: str) -> DirectoryUser:
        await self._lock()
        row = await self.user(user_id)
        if row.active:
            await self._revoke(row, change="deleted")
        await self._audit(
            AuditAction.DIRECTORY_USER_DELETED, "user", row.user_id, user_name=row.user_name
        )
        person = await self.session.get(AppUser, row.user_id)
        await self.session.delete(row)
        await self.session.flush()
        if (
            person is not None
            and _is_placeholder_of(person, self._org)
            and not await self._still_referenced(person.id)
        ):
            # Nobody signed in as this person: nothing of them is left to keep.
            await self.session.delete(person)
            await self.session.flush()
        return row

    async def _still_referenced(self, user_id: UUID) -> bool:
        """Whether any directory entry or membership (of any organization) still names this
        user: deleting it would cascade to them."""
        entry = await self.session.execute(
            select(DirectoryUser.id).where(DirectoryUser.user_id == user_id).limit(1)
        )
        if entry.first() is not None:
            return True
        member = await self.session.execute(
            select(Membership.id).where(Membership.user_id == user_id).limit(1)
        )
        return member.first() is not None

    def model_of(self, row: DirectoryUser) -> ScimUser:
        data = {**row.attributes, "id": str(row.id), "userName": row.user_name}
        if row.external_id is not None:
            data["externalId"] = row.external_id
        else:
            data.pop("externalId", None)
        with POLICY:
            return ScimUser.model_validate(data)

    async def _save(self, row: DirectoryUser, model: ScimUser) -> DirectoryUser:
        user_name = (model.user_name or "").strip()
        if not user_name:
            raise InvalidValueException(detail="userName is required.")
        if model.id is not None and model.id != str(row.id):
            raise MutabilityException(detail="id cannot be changed.")
        await self._check_unique(user_name, model.external_id, exclude=row.id)
        was_active = row.active
        row.user_name = user_name
        row.user_name_key = _key(user_name)
        row.external_id = model.external_id
        row.email = _primary_email(model)
        # Left out (a PUT without it, a PATCH removing it): the state stays as it is, so a
        # profile update never reactivates someone the directory deactivated.
        row.active = row.active if model.active is None else model.active
        row.attributes = _stored(model)
        person = await self.session.get_one(AppUser, row.user_id)
        if _is_placeholder_of(person, self._org):
            _profile(person, model, row.email or user_name)
        await self.session.flush()
        await self._audit(
            AuditAction.DIRECTORY_USER_UPDATED, "user", row.user_id, user_name=user_name
        )
        if was_active and not row.active:
            await self._revoke(row, change="deactivated")
            await self._audit(
                AuditAction.DIRECTORY_USER_DEACTIVATED, "user", row.user_id, user_name=user_name
            )
        elif row.active and not was_active:
            await self._grant(row)
            await self._audit(
                AuditAction.DIRECTORY_USER_REACTIVATED, "user", row.user_id, user_name=user_name
            )
        return row

    async def _check_unique(
        self, user_name: str, external_id: str | None, *, exclude: UUID | None
    ) -> None:
        clash = select(DirectoryUser.id).where(
            DirectoryUser.organization_id == self._org,
            DirectoryUser.user_name_key == _key(user_name),
        )
        if exclude is not None:
            clash = clash.where(DirectoryUser.id != exclude)
        if (await self.session.execute(clash)).first() is not None:
            raise UniquenessException(detail=f"userName {user_name!r} is taken in this directory.")
        if external_id is not None:
            clash = select(DirectoryUser.id).where(
                DirectoryUser.organization_id == self._org,
                DirectoryUser.external_id == external_id,
            )
            if exclude is not None:
                clash = clash.where(DirectoryUser.id != exclude)
            if (await self.session.execute(clash)).first() is not None:
                raise UniquenessException(
                    detail=f"externalId {external_id!r} is taken in this directory."
                )

    async def _verified_domain(self, email: str) -> bool:
        domain = email.rpartition("@")[2]
        found = await self.session.execute(
            select(OrganizationDomain.id).where(
                OrganizationDomain.organization_id == self._org,
                OrganizationDomain.domain == domain,
                OrganizationDomain.verified_at.is_not(None),
            )
        )
        return found.first() is not None

    async def _person_for(
        self, email: str | None, user_name: str, model: ScimUser, row_id: UUID
    ) -> AppUser:
        """The existing member of this organization with this email when the organization has
        verified its domain, else a placeholder of this directory entry's own.

        `User.email` records no verification: anyone who signed in once asserting an address
        has a user with it. So a user outside the organization is never linked here; their
        placeholder is claimed at their first sign-in with that email verified
        (`claim_directory_identity`). Another organization's placeholder is never linked."""
        if email is not None and await self._verified_domain(email):
            existing = (
                await self.session.scalars(
                    select(AppUser)
                    .join(Membership, Membership.user_id == AppUser.id)
                    .where(
                        Membership.organization_id == self._org,
                        AppUser.email == email,
                        or_(
                            ~AppUser.sub.startswith(PLACEHOLDER_SUB),
                            AppUser.sub.startswith(f"{PLACEHOLDER_SUB}{self._org}|"),
                        ),
                    )
                    .order_by(AppUser.last_login_at.desc().nulls_last(), AppUser.id)
                    .limit(1)
                )
            ).first()
            if existing is not None:
                linked = await self.session.execute(
                    select(DirectoryUser.id).where(
                        DirectoryUser.organization_id == self._org,
                        DirectoryUser.user_id == existing.id,
                    )
                )
                if linked.first() is not None:
                    raise UniquenessException(
                        detail=f"{email} is already provisioned in this directory."
                    )
                return existing
        person = AppUser(sub=f"{PLACEHOLDER_SUB}{self._org}|{row_id}", email="", name="")
        _profile(person, model, email or user_name)
        self.session.add(person)
        await self.session.flush()
        return person

    # ---- memberships ---------------------------------------------------------------------

    async def _membership(self, row: DirectoryUser) -> Membership | None:
        found = (
            await self.session.execute(
                select(Membership)
                .where(Membership.organization_id == self._org, Membership.user_id == row.user_id)
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        return found

    async def mapped_roles(self, directory_user_ids: Iterable[UUID]) -> dict[UUID, Role]:
        """The highest role each person's mapped groups give (absent: no mapped group)."""
        best: dict[UUID, Role] = {}
        for ids in _batches(directory_user_ids):
            rows = await self.session.execute(
                select(DirectoryGroupMember.directory_user_id, DirectoryGroup.role)
                .join(DirectoryGroup, DirectoryGroup.id == DirectoryGroupMember.group_id)
                .where(
                    DirectoryGroupMember.organization_id == self._org,
                    DirectoryGroupMember.directory_user_id.in_(ids),
                    DirectoryGroup.role.is_not(None),
                )
            )
            for user_id, role_name in rows.tuples():
                role = Role(str(role_name))
                if user_id not in best or _rank(role) > _rank(best[user_id]):
                    best[user_id] = role
        return best

    async def _grant(self, row: DirectoryUser) -> None:
        role = (await self.mapped_roles([row.id])).get(row.id) or Role(
            self.organization.default_role
        )
        membership = await self._membership(row)
        if membership is None:
            if grant_refusal(self.authority, role) is not None:
                raise OwnerProtected(
                    row.user_id,
                    f"granted {role}",
                    _beyond(self.authority or Role.OWNER, f"grant the {role} role"),
                )
            membership = await self.members.add(
                organization_id=self._org,
                user_id=row.user_id,
                role=role,
                actor=self.actor,
                via="directory",
            )
        elif (await self.mapped_roles([row.id])).get(row.id) is not None:
            await self._set_role(row, membership, role)
        membership.directory_managed = True
        # The directory let them in again (reactivated, or added back): a removal recorded
        # earlier, by an admin or by this directory, no longer keeps them out.
        await forget_removal(self.session, self._org, row.user_id)
        await self.session.flush()

    async def _revoke(self, row: DirectoryUser, *, change: str) -> None:
        membership = await self._membership(row)
        if membership is None:
            return
        if removal_refusal(self.authority, Role(membership.role)) is not None:
            raise OwnerProtected(
                row.user_id,
                change,
                _beyond(self.authority or Role.OWNER, f"remove a {membership.role}"),
            )
        try:
            await self.members.remove(
                organization_id=self._org, membership_id=membership.id, actor=self.actor
            )
        except LastOwnerError:
            raise LastOwnerRefused(row.user_id, change) from None

    async def _set_role(self, row: DirectoryUser, membership: Membership, role: Role) -> None:
        if membership.role == role.value:
            return
        if role_change_refusal(self.authority, Role(membership.role), role) is not None:
            raise OwnerProtected(
                row.user_id,
                f"{membership.role} to {role}",
                _beyond(
                    self.authority or Role.OWNER,
                    f"change a {membership.role}'s role to {role}",
                ),
            )
        try:
            await self.members.change_role(
                organization_id=self._org,
                membership_id=membership.id,
                role=role,
                actor=self.actor,
            )
        except LastOwnerError:
            raise LastOwnerRefused(row.user_id, f"demoted to {role}") from None

    async def _apply_roles(self, before: dict[UUID, Role], user_ids: Iterable[UUID]) -> None:
        """After a group change: each affected active member gets the highest mapped role, or
        the default where they had one from a group and have none now."""
        ids = list(user_ids)
        after = await self.mapped_roles(ids)
        default = Role(self.organization.default_role)
        found: list[DirectoryUser] = []
        for batch in _batches(ids):
            found.extend(
                await self.session.scalars(
                    select(DirectoryUser).where(
                        DirectoryUser.organization_id == self._org,
                        DirectoryUser.id.in_(batch),
                        DirectoryUser.active.is_(True),
                    )
                )
            )
        for row in found:
            if row.id in after:
                target = after[row.id]
            elif row.id in before:
                target = default
            else:
                continue
            membership = await self._membership(row)
            if membership is not None:
                await self._set_role(row, membership, target)

    # ---- groups --------------------------------------------------------------------------

    async def group(self, group_id: str) -> DirectoryGroup:
        try:
            key = UUID(group_id)
        except ValueError:
            raise NotFoundException(detail=f"No group {group_id!r} in this directory.") from None
        row = (
            await self.session.execute(
                select(DirectoryGroup)
                .where(DirectoryGroup.organization_id == self._org, DirectoryGroup.id == key)
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFoundException(detail=f"No group {group_id!r} in this directory.")
        return row

    async def members_of(
        self, groups: Sequence[DirectoryGroup]
    ) -> dict[UUID, list[tuple[DirectoryUser, str | None]]]:
        ids = [g.id for g in groups]
        found: dict[UUID, list[tuple[DirectoryUser, str | None]]] = {i: [] for i in ids}
        if not ids:
            return found
        rows = await self.session.execute(
            select(DirectoryGroupMember.group_id, DirectoryUser, DirectoryGroupMember.display)
            .join(DirectoryUser, DirectoryUser.id == DirectoryGroupMember.directory_user_id)
            .where(
                DirectoryGroupMember.organization_id == self._org,
                DirectoryGroupMember.group_id.in_(ids),
            )
            .order_by(DirectoryUser.id)
        )
        for group_id, user, display in rows.tuples():
            found[group_id].append((user, display))
        return found

    async def list_groups(
        self, filter_text: str | None, start_index: int | None, count: int | None
    ) -> Page:
        start, size = _bounded(start_index, count)
        statement = select(DirectoryGroup).where(DirectoryGroup.organization_id == self._org)
        if filter_text:
            column, value = _eq_filter(filter_text, Group, GROUP_FILTERS)
            if column == "displayName":
                statement = statement.where(DirectoryGroup.display_name_key == _key(value))
            else:
                statement = statement.where(DirectoryGroup.external_id == value)
        total = await self.session.scalar(select(func.count()).select_from(statement.subquery()))
        rows: list[DirectoryGroup] = []
        if size:
            rows = list(
                await self.session.scalars(
                    statement.order_by(DirectoryGroup.id).offset(start - 1).limit(size)
                )
            )
        return Page(int(total or 0), start, rows)

    def group_model(
        self,
        row: DirectoryGroup,
        members: list[tuple[DirectoryUser, str | None]],
        location: Callable[[UUID], str] | None = None,
    ) -> Group:
        entries = []
        for user, display in members:
            entry: dict[str, Any] = {"value": str(user.id), "type": "User"}
            if display is not None:
                entry["display"] = display
            if location is not None:
                entry["$ref"] = location(user.id)
            entries.append(entry)
        data: dict[str, Any] = {
            "id": str(row.id),
            "displayName": row.display_name,
            "members": entries,
        }
        if row.external_id is not None:
            data["externalId"] = row.external_id
        if not members:
            data.pop("members")
        return Group.model_validate(data)

    async def _check_group_unique(
        self, name: str, external_id: str | None, *, exclude: UUID | None
    ) -> None:
        clash = select(DirectoryGroup.id).where(
            DirectoryGroup.organization_id == self._org,
            DirectoryGroup.display_name_key == _key(name),
        )
        if exclude is not None:
            clash = clash.where(DirectoryGroup.id != exclude)
        if (await self.session.execute(clash)).first() is not None:
            raise UniquenessException(detail=f"A group named {name!r} exists in this directory.")
        if external_id is not None:
            clash = select(DirectoryGroup.id).where(
                DirectoryGroup.organization_id == self._org,
                DirectoryGroup.external_id == external_id,
            )
            if exclude is not None:
                clash = clash.where(DirectoryGroup.id != exclude)
            if (await self.session.execute(clash)).first() is not None:
                raise UniquenessException(
                    detail=f"externalId {external_id!r} is taken in this directory."
                )

    async def create_group(self, model: Group) -> DirectoryGroup:
        _check_members(len(model.members or []))
        await self._lock()
        name = (model.display_name or "").strip()
        if not name:
            raise InvalidValueException(detail="displayName is required.")
        if len(name) > 255:
            raise InvalidValueException(detail="displayName: at most 255 characters.")
        await self._check_group_unique(name, model.external_id, exclude=None)
        row = DirectoryGroup(
            organization_id=self._org,
            display_name=name,
            display_name_key=_key(name),
            external_id=model.external_id,
        )
        self.session.add(row)
        await self.session.flush()
        await self._audit(AuditAction.DIRECTORY_GROUP_CREATED, "directory_group", row.id, name=name)
        await self._set_members(row, model)
        return row

    async def replace_group(self, group_id: str, model: Group) -> DirectoryGroup:
        _check_members(len(model.members or []))
        await self._lock()
        row = await self.group(group_id)
        return await self._save_group(row, model)

    async def patch_group(self, group_id: str, patch: PatchOp[Group]) -> DirectoryGroup:
        _check_operations(patch)
        _check_members(sum(_members_sent(o.value) for o in patch.operations or []))
        await self._lock()
        row = await self.group(group_id)
        if await self._patch_members_only(row, patch):
            return row
        members = (await self.members_of([row]))[row.id]
        model = self.group_model(row, members)
        before = {str(m.value) for m in model.members or []}
        with POLICY:
            patch.patch(model)
        # Counted on the outcome too: a value may carry members in shapes the count of what
        # was sent does not read (nested under the schema's URN, say).
        _check_members(len({str(m.value) for m in model.members or []} - before))
        return await self._save_group(row, model)

    async def _save_group(self, row: DirectoryGroup, model: Group) -> DirectoryGroup:
        name = (model.display_name or "").strip()
        if not name:
            raise InvalidValueException(detail="displayName is required.")
        if model.id is not None and model.id != str(row.id):
            raise MutabilityException(detail="id cannot be changed.")
        await self._check_group_unique(name, model.external_id, exclude=row.id)
        if name != row.display_name or model.external_id != row.external_id:
            await self._audit(
                AuditAction.DIRECTORY_GROUP_UPDATED,
                "directory_group",
                row.id,
                name=name,
                previous=row.display_name,
            )
        row.display_name = name
        row.display_name_key = _key(name)
        row.external_id = model.external_id
        await self.session.flush()
        await self._set_members(row, model)
        return row

    async def _set_members(self, row: DirectoryGroup, model: Group) -> None:
        """The group's members become exactly the model's (a PUT, or a PATCH applied to the
        whole group)."""
        displays = _member_displays(model.members or [])
        await self._check_known(set(displays))
        existing = {
            link.directory_user_id: link
            for link in await self.session.scalars(
                select(DirectoryGroupMember).where(DirectoryGroupMember.group_id == row.id)
            )
        }
        for user_id, link in existing.items():
            if user_id in displays and link.display != displays[user_id]:
                link.display = displays[user_id]
        added = {k: v for k, v in displays.items() if k not in existing}
        await self._change_members(row, added, set(existing) - set(displays))

    async def _check_known(self, ids: set[UUID]) -> None:
        if not ids:
            return
        known = set(
            await self.session.scalars(
                select(DirectoryUser.id).where(
                    DirectoryUser.organization_id == self._org, DirectoryUser.id.in_(ids)
                )
            )
        )
        if unknown := ids - known:
            raise InvalidValueException(
                detail=f"No user {str(sorted(unknown)[0])!r} in this directory."
            )

    async def _change_members(
        self, row: DirectoryGroup, added: dict[UUID, str | None], removed: set[UUID]
    ) -> None:
        if not added and not removed:
            await self.session.flush()
            return
        affected = set(added) | removed
        before = await self.mapped_roles(affected)
        for batch in _batches(removed):
            await self.session.execute(
                delete(DirectoryGroupMember).where(
                    DirectoryGroupMember.group_id == row.id,
                    DirectoryGroupMember.directory_user_id.in_(batch),
                )
            )
        for user_id, display in added.items():
            self.session.add(
                DirectoryGroupMember(
                    organization_id=self._org,
                    group_id=row.id,
                    directory_user_id=user_id,
                    display=display,
                )
            )
        await self.session.flush()
        await self._audit(
            AuditAction.DIRECTORY_GROUP_UPDATED,
            "directory_group",
            row.id,
            name=row.display_name,
            added=len(added),
            removed=len(removed),
        )
        if row.role is not None:
            await self._apply_roles(before, affected)

    async def _patch_members_only(self, row: DirectoryGroup, patch: PatchOp[Group]) -> bool:
        """A PATCH that only adds or removes members (what IdPs send to push a group, in
        batches), applied to those members alone: a 10,000-member group is not loaded to add
        100. False, with nothing done, for any other PATCH."""
        delta = _members_delta(patch)
        if delta is None:
            return False
        adding, removing = delta
        await self._check_known(set(adding))
        touched = set(adding) | removing
        present = (
            set(
                await self.session.scalars(
                    select(DirectoryGroupMember.directory_user_id).where(
                        DirectoryGroupMember.group_id == row.id,
                        DirectoryGroupMember.directory_user_id.in_(touched),
                    )
                )
            )
            if touched
            else set()
        )
        added = {k: v for k, v in adding.items() if k not in present and k not in removing}
        await self._change_members(row, added, removing & present)
        return True

    async def delete_group(self, group_id: str) -> DirectoryGroup:
        await self._lock()
        row = await self.group(group_id)
        affected = set(
            await self.session.scalars(
                select(DirectoryGroupMember.directory_user_id).where(
                    DirectoryGroupMember.group_id == row.id
                )
            )
        )
        before = await self.mapped_roles(affected)
        await self.session.execute(
            delete(DirectoryGroupMember).where(DirectoryGroupMember.group_id == row.id)
        )
        await self.session.delete(row)
        await self.session.flush()
        await self._audit(
            AuditAction.DIRECTORY_GROUP_DELETED, "directory_group", row.id, name=row.display_name
        )
        if row.role is not None:
            await self._apply_roles(before, affected)
        return row

    async def map_group(
        self, group_id: UUID, role: Role | None, *, actor_role: Role | None
    ) -> DirectoryGroup:
        """Set the role a group gives (None: none) and apply it to its members now. The caller
        holds the organization's lock and has re-read the actor's role."""
        row = (
            await self.session.execute(
                select(DirectoryGroup)
                .where(DirectoryGroup.organization_id == self._org, DirectoryGroup.id == group_id)
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFound("This organization's directory has no such group.")
        if role is not None:
            check_may_grant(actor_role, role)
        if row.role == Role.OWNER.value and actor_role not in (None, Role.OWNER):
            raise Forbidden("Only an owner can change the mapping of a group that gives owner.")
        self.authority = actor_role
        if row.role == (role.value if role else None):
            return row
        affected = set(
            await self.session.scalars(
                select(DirectoryGroupMember.directory_user_id).where(
                    DirectoryGroupMember.group_id == row.id
                )
            )
        )
        before = await self.mapped_roles(affected)
        previous = row.role
        row.role = role.value if role else None
        await self.session.flush()
        await self._audit(
            AuditAction.DIRECTORY_GROUP_MAPPED,
            "directory_group",
            row.id,
            name=row.display_name,
            role=row.role or "none",
            previous=previous or "none",
        )
        try:
            await self._apply_roles(before, affected)
        except LastOwnerRefused:
            raise LastOwnerError from None
        except OwnerProtected:
            raise Forbidden(
                f"Only an owner can make this mapping: it would change the role of an owner "
                f"who is a member of the group “{row.display_name}”.",
                field="role",
            ) from None
        return row

    async def record_refusal(self, refusal: DirectoryRefused) -> None:
        """The audit event of a refused change, written after its transaction rolled back."""
        await self._audit(
            AuditAction.DIRECTORY_CHANGE_REFUSED,
            "user",
            refusal.user_id,
            reason=refusal.reason,
            change=refusal.change,
        )


def _check_operations(patch: PatchOp[Any]) -> None:
    if len(patch.operations or []) > MAX_OPERATIONS:
        raise TooManyException(
            detail=f"At most {MAX_OPERATIONS} PATCH operations per request: send them in batches."
        )


def _members_sent(value: Any) -> int:
    """How many members a PATCH operation's value carries (a list of them, or a path-less
    value holding `members`)."""
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict):
        # The attribute may be named plainly or by its full URN ("urn:…:Group:members"), and
        # a value may name it both ways: every spelling counts.
        return sum(
            len(v) if isinstance(v, list) else 1
            for k, v in value.items()
            if str(k).casefold().rsplit(":", 1)[-1] == "members"
        )
    return 0


def _check_members(count: int) -> None:
    if count > MAX_MEMBERS:
        raise TooManyException(
            detail=f"At most {MAX_MEMBERS} group members per request: send them in batches."
        )


def _member_displays(members: Iterable[Any]) -> dict[UUID, str | None]:
    """Member ids (and the display each came with) from group members, as models or as the
    dicts a PATCH value holds; an id that is no UUID is no user of this directory."""
    displays: dict[UUID, str | None] = {}
    for member in members:
        value = member.get("value") if isinstance(member, dict) else getattr(member, "value", None)
        display = (
            member.get("display") if isinstance(member, dict) else getattr(member, "display", None)
        )
        if not value:
            continue
        try:
            key = UUID(str(value))
        except ValueError:
            raise InvalidValueException(detail=f"No user {value!r} in this directory.") from None
        displays[key] = str(display)[:255] if display else None
    return displays


_MEMBER_FILTER = re.compile(r'^members\[\s*value\s+eq\s+"([^"]+)"\s*\]$', re.IGNORECASE)


def _members_delta(patch: PatchOp[Group]) -> tuple[dict[UUID, str | None], set[UUID]] | None:
    """(members to add, members to remove) when every operation of the PATCH only adds or
    removes members by id; None otherwise."""
    adding: dict[UUID, str | None] = {}
    removing: set[UUID] = set()
    for operation in patch.operations or []:
        path = str(operation.path) if operation.path is not None else ""
        op = operation.op.value
        if path.casefold() == "members" and op in ("add", "remove"):
            values = operation.value
            if not isinstance(values, list) or not values:
                return None
            found = _member_displays(values)
            if op == "add":
                adding.update(found)
                removing.difference_update(found)
            else:
                removing.update(found)
                for key in found:
                    adding.pop(key, None)
        elif op == "remove" and (match := _MEMBER_FILTER.match(path)) is not None:
            try:
                key = UUID(match[1])
            except ValueError:
                continue  # selects no member
            removing.add(key)
            adding.pop(key, None)
        else:
            return None
    return adding, removing


def _stored(model: ScimUser) -> dict[str, Any]:
    """The attributes kept for a user: what a query answers, without what this row's columns
    hold or the server sets (id, meta, groups)."""
    dumped = model.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    # `active` stays: removed, it is absent (and the person active), as RFC 7644 reads it.
    for key in ("id", "meta", "groups", "userName", "externalId", "password"):
        dumped.pop(key, None)
    return dumped


def _profile(person: AppUser, model: ScimUser, email: str) -> None:
    person.email = email[:320]
    name = model.display_name or ""
    if not name and model.name is not None:
        name = model.name.formatted or " ".join(
            part for part in (model.name.given_name, model.name.family_name) if part
        )
    person.name = (name or email.partition("@")[0])[:255]


async def claim_directory_identity(
    session: AsyncSession,
    organization: Organization,
    user: AppUser,
    *,
    email_verified: bool,
    actor: Actor,
) -> DirectoryUser | None:
    """At sign-in: the directory entry this person is, if any, linked to their real identity.

    A person the directory created before they ever signed in has a placeholder user; their
    first sign-in to the organization, with an email the IdP verified at one of the
    organization's verified domains, moves the directory entry and its membership to the
    signed-in user and drops the placeholder. Returns the entry (active or not), None when the
    directory does not know this person."""
    linked = (
        await session.execute(
            select(DirectoryUser).where(
                DirectoryUser.organization_id == organization.id,
                DirectoryUser.user_id == user.id,
            )
        )
    ).scalar_one_or_none()
    if linked is not None or not email_verified or is_placeholder(user):
        return linked
    try:
        email = normalize_email(user.email)
    except InvalidInput:
        return None
    candidates = (
        select(DirectoryUser, AppUser)
        .join(AppUser, AppUser.id == DirectoryUser.user_id)
        .where(
            DirectoryUser.organization_id == organization.id,
            DirectoryUser.email == email,
            AppUser.sub.startswith(f"{PLACEHOLDER_SUB}{organization.id}|"),
        )
        .execution_options(populate_existing=True)
    )
    # Most sign-ins have no such entry: found without a lock, then read again under it.
    if (await session.execute(candidates)).first() is None:
        return None
    if not await DirectoryService(session, organization, actor)._verified_domain(email):
        return None
    await lock_organization(session, organization.id)
    found = (await session.execute(candidates)).first()
    if found is None:
        return None
    entry, placeholder = found
    membership = (
        await session.execute(
            select(Membership).where(
                Membership.organization_id == organization.id,
                Membership.user_id == placeholder.id,
            )
        )
    ).scalar_one_or_none()
    entry.user_id = user.id
    if membership is not None:
        membership.user_id = user.id
    await session.flush()
    await session.delete(placeholder)
    await session.flush()
    if membership is not None:
        # Auth0 has this person now: the outbox adds them to the organization with their role.
        sync_member_later(session, organization.id, user.id)
    await AuditService(session=session).record(
        AuditAction.DIRECTORY_USER_UPDATED,
        actor=actor,
        organization_id=organization.id,
        target_type="user",
        target_id=user.id,
        details={"user_name": entry.user_name, "linked": "first sign-in"},
    )
    return entry
