"""Who is asking: the signed-in user, read from the database on every request.

Authorization decisions read live rows (ASVS 8.3.2): a removed member or a changed role takes
effect on the next request, not when a session or token expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar.connection import ASGIConnection
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor
from saas.db.models import Membership, Organization, User
from saas.login.sessions import ORGANIZATION_ID, USER_ID


@dataclass(frozen=True, slots=True)
class MembershipView:
    organization: Organization
    role: str


def _uuid(value: object) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def session_user_id(connection: ASGIConnection[Any, Any, Any, Any]) -> UUID | None:
    return _uuid(connection.session.get(USER_ID))


async def load_current_user(
    request: ASGIConnection[Any, Any, Any, Any], db: AsyncSession
) -> User | None:
    user_id = session_user_id(request)
    if user_id is None:
        return None
    user = await db.get(User, user_id)
    if user is None:
        request.clear_session()  # the account is gone; so is the session
    return user


def active_organization_id(request: ASGIConnection[Any, Any, Any, Any]) -> UUID | None:
    return _uuid(request.session.get(ORGANIZATION_ID))


async def memberships_of(db: AsyncSession, user: User) -> list[MembershipView]:
    stmt = (
        select(Organization, Membership.role)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user.id)
        .order_by(Organization.display_name)
    )
    return [MembershipView(org, role) for org, role in (await db.execute(stmt)).all()]


def actor_from(request: ASGIConnection[Any, Any, Any, Any], user: User | None) -> Actor:
    client = request.client.host if request.client else None
    return Actor(
        user_id=user.id if user else None,
        ip_address=client,
        user_agent=request.headers.get("user-agent"),
    )
