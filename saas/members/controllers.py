"""The members page: the member list (search, sort, pages), inline role changes, removal,
leaving, and ownership transfer.

Every view is one partial that arrives either as an htmx fragment or inside the full page: a
URL opened directly (or reloaded, or restored by the back button) renders the whole page;
an htmx request gets only the part it swaps. Refusals by the membership rules come back as
the same partial with the message beside the control, with the refusal's status code
(403/409/422), which `static/js/dashboard.js` tells htmx to swap.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.db.keyset import Cursor, InvalidCursor
from saas.db.models import Invitation, Membership, User
from saas.errors import DomainError
from saas.invitations.services import InvitationService
from saas.login.current_user import actor_from
from saas.members.services import (
    MATCH_COUNT_CAP,
    MEMBER_SORT_KEYS,
    MemberPage,
    MembershipService,
    PageStart,
)
from saas.tenancy.authority import AuthorityRefused
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission, Role
from saas.tenancy.policy import grantable_roles, removal_refusal, role_options
from saas.web.input import SingleLine
from saas.web.pages import page_context

PAGE_SIZE = 25
INVITATIONS_SHOWN = 50
SORT_LABELS = {
    "name": "Name",
    "email": "Email",
    "role": "Role",
    "joined": "Joined",
    "last_login": "Last sign-in",
}
# Where a fragment and a full page share a URL, caches must keep them apart.
VARY = {"Vary": "HX-Request, HX-History-Restore-Request"}


def connection_label(sub: str) -> str:
    """The sign-in connection, read from the Auth0 user id: `samlp|acme-saml|…` -> acme-saml,
    `auth0|…` -> password (the database connection), `google-oauth2|…` -> google-oauth2."""
    parts = sub.split("|")
    if len(parts) >= 3:
        return parts[1]
    if parts[0] == "auth0":
        return "password"
    return parts[0] if len(parts) == 2 else "unknown"


def is_fragment(request: HTMXRequest) -> bool:
    """An htmx swap wants the partial; a history restore (cache miss) needs the full page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def toast(message: str, level: str = "success") -> dict[str, str]:
    """An `HX-Trigger` header that `static/js/dashboard.js` shows as a toast."""
    return {"HX-Trigger": json.dumps({"toast": {"message": message, "level": level}})}


def members_url(tenant: TenantContext) -> str:
    return f"/o/{tenant.organization.slug}/members"


@dataclass
class MemberRow:
    """One row of the table, with what the viewer may do to it decided here, not in Jinja."""

    membership: Membership
    user: User
    connection: str
    is_me: bool
    can_change_role: bool
    can_remove: bool
    can_transfer: bool
    role_options: list[Role]
    error: str | None = None


def member_row(
    tenant: TenantContext, membership: Membership, user: User, error: str | None = None
) -> MemberRow:
    target_role = Role(membership.role)
    is_me = membership.user_id == tenant.user.id
    options = role_options(tenant.role, target_role)
    return MemberRow(
        membership=membership,
        user=user,
        connection=connection_label(user.sub),
        is_me=is_me,
        can_change_role=bool(options),
        # Your own row offers "leave" (members_self.html) instead.
        can_remove=not is_me and removal_refusal(tenant.role, target_role) is None,
        can_transfer=tenant.can(Permission.OWNERSHIP) and not is_me and target_role != Role.OWNER,
        role_options=options,
        error=error,
    )


@dataclass
class MemberListing:
    rows: list[MemberRow]
    page: MemberPage
    # Members of the organization, or (searching) matches counted up to MATCH_COUNT_CAP + 1.
    total: int
    q: str
    sort: str
    descending: bool
    base_url: str

    # Where this page starts, as query parameters: {"after": cursor}, {"before": cursor},
    # {"at": "last"}, or {} for the first page. Its URL reproduces these rows on reload.
    position: dict[str, str] = field(default_factory=dict)

    def url(self, *, at: dict[str, str] | None = None, **changes: Any) -> str:
        """This listing's URL with `changes`, at this page or (`at`) another position."""
        params: dict[str, Any] = {
            "q": self.q,
            "sort": self.sort,
            "dir": "desc" if self.descending else "asc",
            **(self.position if at is None else at),
            **changes,
        }
        clean = {k: v for k, v in params.items() if v not in ("", None)}
        if clean.get("sort") == "name" and clean.get("dir") == "asc":
            clean.pop("sort")
            clean.pop("dir")
        return self.base_url + ("?" + urlencode(clean) if clean else "")

    @property
    def first_url(self) -> str:
        return self.url(at={})

    @property
    def previous_url(self) -> str:
        cursor = self.page.previous_cursor
        return self.url(at={"before": cursor.encode()}) if cursor else self.first_url

    @property
    def next_url(self) -> str:
        cursor = self.page.next_cursor
        return self.url(at={"after": cursor.encode()}) if cursor else self.first_url

    @property
    def last_url(self) -> str:
        return self.url(at={"at": "last"})

    def sort_url(self, column: str) -> str:
        descending = not self.descending if column == self.sort else False
        return self.url(at={}, sort=column, dir="desc" if descending else "asc")

    def aria_sort(self, column: str) -> str | None:
        if column != self.sort:
            return None
        return "descending" if self.descending else "ascending"

    @property
    def total_label(self) -> str:
        """ "100,000 members", or "5,000+ members matching “x”", counted no further than the cap."""
        count = (
            f"{MATCH_COUNT_CAP:,}+"
            if self.q and self.total > MATCH_COUNT_CAP
            else f"{self.total:,}"
        )
        noun = "member" if self.total == 1 else "members"
        return f"{count} {noun}" + (f" matching \u201c{self.q}\u201d" if self.q else "")


async def member_listing(
    tenant: TenantContext,
    db: AsyncSession,
    *,
    q: str | None = None,
    sort: str | None = None,
    direction: str | None = None,
    after: str | None = None,
    before: str | None = None,
    at: str | None = None,
) -> MemberListing:
    """One page of members. The organization's member count comes with the tenant, so a
    listing is one SQL statement (two when searching: the capped match count)."""
    search = (q or "").strip()[:200]
    sort_key = sort if sort in MEMBER_SORT_KEYS else "name"
    descending = direction == "desc"
    start, cursor = _page_position(after, before, at)
    service = MembershipService(session=db)
    query: dict[str, Any] = {
        "search": search or None,
        "sort": sort_key,
        "descending": descending,
        "limit": PAGE_SIZE,
    }
    try:
        page, total = await service.listing(
            tenant.organization, start=start, cursor=cursor, **query
        )
    except InvalidCursor:
        # A stale or edited link (another sort, a mangled cursor): the first page, not an error.
        page, total = await service.listing(tenant.organization, **query)
    position = {
        PageStart.FIRST: {},
        PageStart.AFTER: {"after": after or ""},
        PageStart.BEFORE: {"before": before or ""},
        PageStart.LAST: {"at": "last"},
    }[page.start]
    return MemberListing(
        rows=[member_row(tenant, membership, user) for membership, user in page.rows],
        page=page,
        total=total,
        q=search,
        sort=sort_key,
        descending=descending,
        base_url=members_url(tenant),
        position=position,
    )


def _page_position(
    after: str | None, before: str | None, at: str | None
) -> tuple[PageStart, Cursor | None]:
    try:
        if after:
            return PageStart.AFTER, Cursor.decode(after)
        if before:
            return PageStart.BEFORE, Cursor.decode(before)
    except InvalidCursor:
        return PageStart.FIRST, None
    return (PageStart.LAST if at == "last" else PageStart.FIRST), None


@dataclass
class InvitationListing:
    invitations: list[Invitation]
    total: int
    now: datetime.datetime
    error: str | None = None


async def invitation_listing(
    tenant: TenantContext, db: AsyncSession, error: str | None = None
) -> InvitationListing | None:
    """Open invitations (pending and expired), for those who may invite; None for others."""
    if not tenant.can(Permission.MEMBERS_INVITE):
        return None
    page = await InvitationService(session=db).page(
        tenant.organization.id, open_only=True, limit=INVITATIONS_SHOWN, offset=0
    )
    return InvitationListing(
        invitations=list(page.items),
        total=page.total,
        now=datetime.datetime.now(datetime.UTC),
        error=error,
    )


@dataclass
class InviteForm:
    emails: str = ""
    role: str = Role.MEMBER.value
    errors: dict[str, list[str]] = field(default_factory=dict)


async def members_page(
    tenant: TenantContext,
    db: AsyncSession,
    *,
    listing: MemberListing | None = None,
    invite: InviteForm | None = None,
    invitations: InvitationListing | None = None,
    self_error: str | None = None,
    alert: str | None = None,
    status_code: int = 200,
) -> Template:
    """The whole members page (direct visits, reloads, plain-form refusals)."""
    context = await page_context(
        tenant,
        db,
        listing=listing or await member_listing(tenant, db),
        invite=invite or InviteForm(),
        invitations=invitations or await invitation_listing(tenant, db),
        grantable=grantable_roles(tenant.role),
        self_error=self_error,
        alert=alert,
    )
    return Template("pages/members.html", context=context, status_code=status_code, headers=VARY)


class RoleForm(Struct):
    role: SingleLine = ""


RoleBody = Annotated[RoleForm, Body(media_type=RequestEncodingType.URL_ENCODED)]


class MembersController(Controller):
    path = "/members"

    @get("/", name="members.list", guards=[requires(Permission.MEMBERS_READ)], cache=False)
    async def list_members(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        q: FromQuery[str | None] = None,
        sort: FromQuery[str | None] = None,
        dir: FromQuery[str | None] = None,
        after: FromQuery[str | None] = None,
        before: FromQuery[str | None] = None,
        at: FromQuery[str | None] = None,
    ) -> Template:
        listing = await member_listing(
            tenant, db_session, q=q, sort=sort, direction=dir, after=after, before=before, at=at
        )
        if is_fragment(request):
            return Template(
                "partials/members_results.html",
                context={"tenant": tenant, "listing": listing, "fragment": True},
                # The pushed URL, canonical: default sort and page 1 left out.
                headers={**VARY, "HX-Push-Url": listing.url()},
            )
        return await members_page(tenant, db_session, listing=listing)

    async def _row_response(
        self,
        request: HTMXRequest,
        tenant: TenantContext,
        db: AsyncSession,
        membership_id: UUID,
        error: DomainError,
    ) -> Template:
        """A refusal: the row again, unchanged, with the reason beside its controls."""
        if not is_fragment(request):
            return await members_page(tenant, db, alert=error.detail, status_code=error.status_code)
        membership = await MembershipService(session=db).find_by_id(
            tenant.organization.id, membership_id
        )
        if membership is None:
            raise error
        await db.refresh(membership)
        user = await db.get(User, membership.user_id)
        assert user is not None
        return Template(
            "partials/members_row.html",
            context={"tenant": tenant, "row": member_row(tenant, membership, user, error.detail)},
            status_code=error.status_code,
        )

    @post(
        "/{member_id:uuid}/role",
        name="members.change_role",
        guards=[requires(Permission.MEMBERS_MANAGE)],
        status_code=200,
    )
    async def change_role(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        member_id: FromPath[UUID],
        data: RoleBody,
    ) -> Template | Redirect:
        service = MembershipService(session=db_session)
        try:
            membership = await service.change_role(
                organization_id=tenant.organization.id,
                membership_id=member_id,
                role=data.role,
                actor=actor_from(request, tenant.user),
                authority=tenant.acting,
            )
        except DomainError as error:
            if isinstance(error, AuthorityRefused) or error.status_code == 404:
                raise
            return await self._row_response(request, tenant, db_session, member_id, error)
        if not is_fragment(request):
            return Redirect(path=members_url(tenant), status_code=303)
        user = await db_session.get(User, membership.user_id)
        assert user is not None
        headers = toast(f"{user.name or user.email} is now {membership.role}.")
        if membership.user_id == tenant.user.id:
            # Your own role changed: what you may do changed with it.
            headers["HX-Refresh"] = "true"
        return Template(
            "partials/members_row.html",
            context={"tenant": tenant, "row": member_row(tenant, membership, user)},
            headers=headers,
        )

    @post(
        "/{member_id:uuid}/remove",
        name="members.remove",
        guards=[requires(Permission.MEMBERS_MANAGE)],
        status_code=200,
    )
    async def remove_member(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        member_id: FromPath[UUID],
    ) -> Response[str] | Template | Redirect:
        service = MembershipService(session=db_session)
        try:
            membership = await service.remove(
                organization_id=tenant.organization.id,
                membership_id=member_id,
                actor=actor_from(request, tenant.user),
                authority=tenant.acting,
            )
        except DomainError as error:
            if isinstance(error, AuthorityRefused) or error.status_code == 404:
                raise
            return await self._row_response(request, tenant, db_session, member_id, error)
        if not is_fragment(request):
            return Redirect(path=members_url(tenant), status_code=303)
        user = await db_session.get(User, membership.user_id)
        who = (user.name or user.email) if user else "The member"
        # An empty body swapped over the row removes it.
        return Response(
            "", media_type="text/html", headers=toast(f"{who} was removed from the organization.")
        )

    @post(
        "/{member_id:uuid}/transfer-ownership",
        name="members.transfer_ownership",
        guards=[requires(Permission.OWNERSHIP)],
        status_code=200,
    )
    async def transfer_ownership(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        member_id: FromPath[UUID],
    ) -> Response[str] | Template | Redirect:
        service = MembershipService(session=db_session)
        try:
            await service.transfer_ownership(
                organization_id=tenant.organization.id,
                membership_id=member_id,
                actor=actor_from(request, tenant.user),
            )
        except DomainError as error:
            if isinstance(error, AuthorityRefused) or error.status_code == 404:
                raise
            return await self._row_response(request, tenant, db_session, member_id, error)
        if not is_fragment(request):
            return Redirect(path=members_url(tenant), status_code=303)
        # Two rows and the viewer's own powers changed: reload the page.
        return Response("", media_type="text/html", headers={"HX-Refresh": "true"})

    @post(
        "/leave",
        name="members.leave",
        guards=[requires(Permission.MEMBERS_READ)],
        status_code=200,
    )
    async def leave(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
    ) -> Response[str] | Template | Redirect:
        service = MembershipService(session=db_session)
        try:
            await service.leave(
                organization_id=tenant.organization.id,
                user_id=tenant.user.id,
                actor=actor_from(request, tenant.user),
            )
        except AuthorityRefused:
            raise
        except DomainError as error:
            if not is_fragment(request):
                return await members_page(
                    tenant, db_session, self_error=error.detail, status_code=error.status_code
                )
            return Template(
                "partials/members_self.html",
                context={"tenant": tenant, "self_error": error.detail},
                status_code=error.status_code,
            )
        if not is_fragment(request):
            return Redirect(path="/select-organization", status_code=303)
        return Response("", media_type="text/html", headers={"HX-Redirect": "/select-organization"})
