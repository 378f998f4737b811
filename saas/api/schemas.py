"""JSON shapes of the public API (msgspec: fast, and documented in OpenAPI as they are)."""

from __future__ import annotations

import datetime
from typing import Annotated
from uuid import UUID

from litestar.params import QueryParameter
from msgspec import Meta, Struct

from saas.web.input import SINGLE_LINE_PATTERN, SingleLine

MAX_PAGE_SIZE = 100
# Unbounded, an offset past 2**63 overflowed both drivers and a negative one is an error on
# PostgreSQL (500s); a million is far past any listing anyone pages through.
MAX_OFFSET = 1_000_000
MAX_SEARCH_LENGTH = 200

# Query parameters carry their bounds as Litestar parameters: Litestar validates those, and
# states them in the OpenAPI document. (A msgspec `Meta` on a query parameter's type is
# silently dropped: `limit=1000000` returned every row.)
Limit = Annotated[
    int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description=f"Page size (1-{MAX_PAGE_SIZE}).")
]
Offset = Annotated[
    int,
    QueryParameter(ge=0, le=MAX_OFFSET, description=f"Items to skip (0-{MAX_OFFSET:,})."),
]
Search = Annotated[
    str | None,
    QueryParameter(
        max_length=MAX_SEARCH_LENGTH,
        pattern=SINGLE_LINE_PATTERN,
        description=f"Search text, up to {MAX_SEARCH_LENGTH} characters.",
    ),
]
PageCursor = Annotated[
    str | None,
    QueryParameter(
        max_length=1024,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="A cursor from a previous page (`next_cursor` or `previous_cursor`).",
    ),
]

# Request bodies: every string is single-line text of bounded length.
Role = Annotated[SingleLine, Meta(max_length=32, description="owner, admin, member or viewer.")]
Email = Annotated[SingleLine, Meta(max_length=320)]
ProjectName = Annotated[SingleLine, Meta(min_length=1, max_length=200)]


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
    role: Role


class InvitationIn(Struct, forbid_unknown_fields=True):
    email: Email
    role: Role = "member"


class InvitationOut(Struct):
    id: UUID
    email: str
    role: str
    status: str  # pending, accepted, revoked, expired
    expires_at: datetime.datetime
    created_at: datetime.datetime


class ProjectIn(Struct, forbid_unknown_fields=True):
    name: ProjectName


class ProjectOut(Struct):
    id: UUID
    name: str
    created_at: datetime.datetime
    updated_at: datetime.datetime
