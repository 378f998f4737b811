"""Queries shared by the login flow, the token endpoint and the Management API."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.devidp.models import (
    Client,
    Connection,
    MemberRole,
    Membership,
    Organization,
    OrganizationConnection,
    Role,
    User,
)


async def get_client(db: AsyncSession, client_id: str | None) -> Client | None:
    if not client_id:
        return None
    return await db.get(Client, client_id)


async def find_organization(db: AsyncSession, id_or_name: str) -> Organization | None:
    """``organization`` may be an id (``org_…``) or a name, as with Auth0's tenant setting."""
    if id_or_name.startswith("org_"):
        org = await db.get(Organization, id_or_name)
        if org is not None:
            return org
    return await db.scalar(select(Organization).where(Organization.name == id_or_name))


async def connection_by_name(db: AsyncSession, name: str) -> Connection | None:
    return await db.scalar(select(Connection).where(Connection.name == name))


async def enabled_connections(
    db: AsyncSession, org_id: str
) -> list[tuple[OrganizationConnection, Connection]]:
    rows = await db.execute(
        select(OrganizationConnection, Connection)
        .join(Connection, Connection.id == OrganizationConnection.connection_id)
        .where(OrganizationConnection.organization_id == org_id)
        .order_by(Connection.name)
    )
    return [(oc, conn) for oc, conn in rows.tuples()]


async def enabled_connection(
    db: AsyncSession, org_id: str, connection_name: str
) -> OrganizationConnection | None:
    return await db.scalar(
        select(OrganizationConnection)
        .join(Connection, Connection.id == OrganizationConnection.connection_id)
        .where(
            OrganizationConnection.organization_id == org_id,
            Connection.name == connection_name,
        )
    )


async def is_member(db: AsyncSession, org_id: str, user_id: str) -> bool:
    return await db.get(Membership, (org_id, user_id)) is not None


async def add_membership(db: AsyncSession, org_id: str, user_id: str, now: float) -> bool:
    if await is_member(db, org_id, user_id):
        return False
    db.add(Membership(organization_id=org_id, user_id=user_id, created_at=now))
    await db.flush()
    return True


async def remove_membership(db: AsyncSession, org_id: str, user_id: str) -> None:
    # Auth0 drops the member's organization roles together with the membership.
    await db.execute(
        delete(MemberRole).where(
            MemberRole.organization_id == org_id, MemberRole.user_id == user_id
        )
    )
    await db.execute(
        delete(Membership).where(
            Membership.organization_id == org_id, Membership.user_id == user_id
        )
    )


async def member_roles(db: AsyncSession, org_id: str, user_id: str) -> list[Role]:
    rows = await db.scalars(
        select(Role)
        .join(MemberRole, MemberRole.role_id == Role.id)
        .where(MemberRole.organization_id == org_id, MemberRole.user_id == user_id)
        .order_by(Role.name)
    )
    return list(rows)


async def add_member_roles(
    db: AsyncSession, org_id: str, user_id: str, role_ids: list[str]
) -> None:
    for role_id in role_ids:
        if await db.get(MemberRole, (org_id, user_id, role_id)) is None:
            db.add(MemberRole(organization_id=org_id, user_id=user_id, role_id=role_id))
    await db.flush()


async def permissions(
    db: AsyncSession, org_id: str | None, user_id: str, audience: str
) -> list[str]:
    """RBAC: the union of the member's organization roles' permissions for this API."""
    if org_id is None:
        return []  # no tenant-level roles exist in the dev IdP
    found: set[str] = set()
    for role in await member_roles(db, org_id, user_id):
        if role.audience == audience:
            found.update(role.permissions)
    return sorted(found)


async def user_organizations(db: AsyncSession, user_id: str) -> list[Organization]:
    rows = await db.scalars(
        select(Organization)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user_id)
        .order_by(Organization.name)
    )
    return list(rows)


async def user_by_email(db: AsyncSession, connection: str, email: str) -> User | None:
    return await db.scalar(
        select(User).where(User.connection == connection, User.email == email.lower())
    )
