"""JSON shapes of the public API (msgspec: fast, and documented in OpenAPI as they are)."""

from __future__ import annotations

import datetime
from typing import Annotated, Generic, TypeVar
from uuid import UUID

from msgspec import Meta, Struct

T = TypeVar("T")

Limit = Annotated[int, Meta(ge=1, le=100, description="Page size (1-100).")]
Offset = Annotated[int, Meta(ge=0, description="Number of items to skip.")]


class Page(Struct, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class MemberPageOut(Struct):
    """A page of members. Pass `next_cursor` as `after` (or `previous_cursor` as `before`) with
    the same `q`, `sort` and `descending` to read the next (previous) page; null at either end."""

    items: list[MemberOut]
    limit: int
    # Members of the organization; with `q`, the matches, counted no further than 5,001.
    total: int
    total_is_lower_bound: bool
    next_cursor: str | None
    previous_cursor: str | None


class OrganizationOut(Struct):
    id: UUID
    slug: str
    auth0_org_id: str | None
    display_name: str
    status: str
    require_sso: bool
    jit_provisioning: bool
    default_role: str


class MemberOut(Struct):
    id: UUID  # the membership id: use it in member URLs
    user_id: UUID
    email: str
    name: str
    role: str
    joined_at: datetime.datetime
    last_login_at: datetime.datetime | None


class RoleChange(Struct, forbid_unknown_fields=True):
    role: str


class InvitationIn(Struct, forbid_unknown_fields=True):
    email: str
    role: str = "member"


class InvitationOut(Struct):
    id: UUID
    email: str
    role: str
    status: str  # pending, accepted, revoked, expired
    expires_at: datetime.datetime
    created_at: datetime.datetime


class ProjectIn(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]


class ProjectOut(Struct):
    id: UUID
    name: str
    created_at: datetime.datetime
    updated_at: datetime.datetime
