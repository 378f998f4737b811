"""The members page's views: the member table's rows and pages, and the whole page.

Shared by the members and the invitations controllers (the invite card lives on this page);
what a viewer may do to each row is decided here, not in Jinja.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from litestar import Request
from litestar.di import NamedDependency
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from saas.auth0.sync_state import SyncState
from saas.db.keyset import Cursor, InvalidCursor
from saas.invitations.services import TenantInvitations
from saas.invitations.views import InviteForm, invitation_listing
from saas.members.services import (
    MATCH_COUNT_CAP,
    MEMBER_SORT_KEYS,
    MemberPage,
    MembershipFields,
    PageStart,
    TenantMembers,
    UserFields,
)
from saas.tenancy.context import TenantContext
from saas.tenancy.permissions import ROLE_RANK, Permission, Role
from saas.tenancy.policy import grantable_roles, removal_refusal, role_options
from saas.web.htmx import VARY
from saas.web.pages import page_context

PAGE_SIZE = 25
# The ids of the members page's htmx triggers (the `HX-Trigger` header names the element):
# a search replaces the URL in place, a refresh after a removal leaves the URL alone.
SEARCH_FORM_ID = "members-search"
REFRESH_ID = "members-refresh"
# The event a removal's answer fires: the list reloads the page it shows.
MEMBERS_CHANGED = "members-changed"
# What a raise to these roles gives, said in the confirmation before it is made.
RAISE_CONFIRMED: dict[Role, str] = {
    Role.ADMIN: "Admins invite and remove people, change roles, and manage settings, "
    "single sign-on and the audit log.",
    Role.OWNER: "Owners can do everything, including deleting the organization.",
}


def connection_label(sub: str) -> str:
    """The sign-in connection, read from the Auth0 user id: `samlp|acme-saml|…` -> acme-saml,
    `auth0|…` -> password (the database connection), `google-oauth2|…` -> google-oauth2."""
    parts = sub.split("|")
    if parts[0] == "scim":  # provisioned by the directory, not signed in yet (saas/scim)
        return "directory"
    if len(parts) >= 3:
        return parts[1]
    if parts[0] == "auth0":
        return "password"
    return parts[0] if len(parts) == 2 else "unknown"


def members_url(request: Request[Any, Any, Any], tenant: TenantContext) -> str:
    return request.app.route_reverse("members.list", slug=tenant.organization.slug)


@dataclass
class MemberRow:
    """One row of the table, with what the viewer may do to it decided here, not in Jinja."""

    membership: MembershipFields
    user: UserFields
    connection: str
    is_me: bool
    can_change_role: bool
    can_remove: bool
    can_transfer: bool
    role_options: list[Role]
    error: str | None = None
    # Where Auth0 stands on this member's role, shown only while it is not in step.
    sync: SyncState | None = None
    # The mapped directory group this member's role comes from (not changed here).
    directory_group: str | None = None

    @property
    def display_name(self) -> str:
        return self.user.name or self.user.email

    @property
    def initials(self) -> str:
        """Up to two letters for the avatar: "Bob Brown" -> BB, "bob@x" -> B."""
        words = (self.user.name or "").split()
        letters = [word[0] for word in words[:1] + words[1:][-1:] if word[:1].isalnum()]
        return ("".join(letters) or self.user.email[:1]).upper()

    def raise_confirmation(self, role: Role) -> tuple[str, str] | None:
        """The question and its detail that a raise to `role` asks first (admin or owner from
        below), or None for a change made without asking."""
        current = Role(self.membership.role)
        if role not in RAISE_CONFIRMED or ROLE_RANK[role] <= ROLE_RANK[current]:
            return None
        article = "an" if role.value[:1] in "aeiou" else "a"
        return f"Make {self.display_name} {article} {role.value}?", RAISE_CONFIRMED[role]

    @property
    def sync_shown(self) -> SyncState | None:
        """Pending or failed; in step (or never synced) shows nothing, to keep rows quiet."""
        return (
            self.sync if self.sync is not None and (self.sync.pending or self.sync.failed) else None
        )


def member_row(
    tenant: TenantContext,
    membership: MembershipFields,
    user: UserFields,
    error: str | None = None,
    sync: SyncState | None = None,
    directory_group: str | None = None,
) -> MemberRow:
    target_role = Role(membership.role)
    is_me = membership.user_id == tenant.user.id
    options = role_options(tenant.role, target_role)
    return MemberRow(
        membership=membership,
        user=user,
        connection=connection_label(user.sub),
        is_me=is_me,
        can_change_role=bool(options) and directory_group is None,
        # Your own row offers "leave" (members_self.html) instead.
        # The directory removes whom it provisioned (saas/scim): a removal here would not last.
        can_remove=not is_me
        and not membership.directory_managed
        and removal_refusal(tenant.role, target_role) is None,
        can_transfer=tenant.can(Permission.OWNERSHIP) and not is_me and target_role != Role.OWNER,
        role_options=options,
        error=error,
        sync=sync,
        directory_group=directory_group,
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


def history_headers(trigger: str | None, listing: MemberListing) -> dict[str, str]:
    """How a list fragment updates the address bar: a search replaces the entry (Back does not
    walk every partial query), a refresh after a removal leaves it, sorting and pages push."""
    if trigger == REFRESH_ID:
        return {}
    return {"HX-Replace-Url" if trigger == SEARCH_FORM_ID else "HX-Push-Url": listing.url()}


async def member_listing(
    tenant: TenantContext,
    members: TenantMembers,
    *,
    base_url: str,
    q: str | None = None,
    sort: str | None = None,
    direction: str | None = None,
    after: str | None = None,
    before: str | None = None,
    at: str | None = None,
) -> MemberListing:
    """One page of members. The organization's member count comes with the tenant, so a
    listing is one SQL statement (two when searching: the capped match count), plus one
    for the sync state of the rows on the page."""
    search = (q or "").strip()[:200]
    sort_key = sort if sort in MEMBER_SORT_KEYS else "name"
    descending = direction == "desc"
    start, cursor = _page_position(after, before, at)
    query: dict[str, Any] = {
        "search": search or None,
        "sort": sort_key,
        "descending": descending,
        "limit": PAGE_SIZE,
    }
    try:
        page, total = await members.listing(start=start, cursor=cursor, **query)
    except InvalidCursor:
        # A stale or edited link (another sort, a mangled cursor): the first page, not an error.
        page, total = await members.listing(**query)
    position = {
        PageStart.FIRST: {},
        PageStart.AFTER: {"after": after or ""},
        PageStart.BEFORE: {"before": before or ""},
        PageStart.LAST: {"at": "last"},
    }[page.start]
    sync = await members.sync_of([user.id for _, user in page.rows])
    managed = [user.id for membership, user in page.rows if membership.directory_managed]
    groups = await members.directory_groups_of(managed) if managed else {}
    return MemberListing(
        rows=[
            member_row(
                tenant,
                membership,
                user,
                sync=sync.get(user.id),
                directory_group=groups.get(user.id),
            )
            for membership, user in page.rows
        ],
        page=page,
        total=total,
        q=search,
        sort=sort_key,
        descending=descending,
        base_url=base_url,
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


@dataclass(frozen=True, slots=True)
class MembersPage:
    """The members page of the request's tenant, as the members and the invitations handlers
    answer with it (`page`): the member list, the invite card and the pending invitations."""

    request: HTMXRequest
    tenant: TenantContext
    db: AsyncSession
    members: TenantMembers
    invitations: TenantInvitations

    @property
    def url(self) -> str:
        return members_url(self.request, self.tenant)

    async def render(
        self,
        *,
        listing: MemberListing | None = None,
        invite: InviteForm | None = None,
        status_code: int = 200,
    ) -> Template:
        """The whole page (direct visits, reloads, a plain form's refused invitation)."""
        context = await page_context(
            self.tenant,
            self.db,
            listing=listing or await member_listing(self.tenant, self.members, base_url=self.url),
            invite=invite or InviteForm(),
            invitations=await invitation_listing(self.tenant, self.invitations),
            grantable=grantable_roles(self.tenant.role),
        )
        return Template(
            "pages/members.html", context=context, status_code=status_code, headers=VARY
        )


def provide_members_page(
    request: HTMXRequest,
    tenant: NamedDependency[TenantContext],
    db_session: NamedDependency[AsyncSession],
    members: NamedDependency[TenantMembers],
    invitations: NamedDependency[TenantInvitations],
) -> MembersPage:
    return MembersPage(request, tenant, db_session, members, invitations)
