"""The members page: the member list (search, sort, pages), inline role changes, removal,
leaving, and ownership transfer.

Every view is one partial that arrives either as an htmx fragment or inside the full page: a
URL opened directly (or reloaded, or restored by the back button) renders the whole page;
an htmx request gets only the part it swaps. Refusals by the membership rules come back as
the same partial with the message beside the control, with the refusal's status code
(403/409/422), which `static/js/dashboard.js` tells htmx to swap: each write declares that
partial (`refuse_into`) and lets the service's `DomainError` rise to `REFUSALS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.flash import flash
from litestar.plugins.htmx import ClientRedirect, ClientRefresh, HTMXRequest, HTMXTemplate
from litestar.response import Template
from msgspec import Struct

from saas.members.services import TenantMembers
from saas.members.views import (
    MEMBERS_CHANGED,
    MembersPage,
    history_headers,
    member_listing,
    member_row,
    members_url,
    provide_members_page,
)
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.tenancy.routers import form_post
from saas.web.htmx import VARY, is_fragment, toast, toast_only
from saas.web.input import SingleLine
from saas.web.refusals import REFUSALS, redirect_with_flash, refuse_into


class RoleForm(Struct):
    role: SingleLine = ""


RoleBody = Annotated[RoleForm, Body(media_type=RequestEncodingType.URL_ENCODED)]


@dataclass(frozen=True, slots=True)
class MemberWrite:
    """A change to one member's row, as its handler receives it (`write`): the request, the
    tenant, the bound members service and the member's id from the path."""

    request: HTMXRequest
    tenant: TenantContext
    members: TenantMembers
    member_id: UUID

    def done(self, message: str, fragment: Callable[[], Response[Any]]) -> Response[Any]:
        """A plain form goes back to the list, where the message is flashed; htmx gets
        `fragment()`."""
        if not is_fragment(self.request):
            return redirect_with_flash(
                self.request, message, members_url(self.request, self.tenant)
            )
        return fragment()

    def reload(self, message: str) -> Response[Any]:
        """The viewer's own powers changed: the page reloads, and says so."""
        flash(self.request, message, category="success")
        return ClientRefresh()


# Reads through the request's session: keep it the only async dependency at its depth that
# does, since Litestar resolves dependencies of one depth concurrently.
async def provide_member_write(
    request: HTMXRequest,
    tenant: NamedDependency[TenantContext],
    members: NamedDependency[TenantMembers],
    member_id: FromPath[UUID],
) -> MemberWrite:
    """Load the member's row before the change, so that a refusal (rendered without a query)
    shows it as it stands, the reason beside its controls. The service re-reads the same
    objects under its lock, so the row shows what the refusal saw. An id that is no member
    here declares nothing: the service answers it with its 404."""
    found = await members.find_with_user(member_id)
    if found is not None:
        membership, user = found
        refuse_into(
            request,
            "partials/members_row.html",
            lambda error: {
                "tenant": tenant,
                "row": member_row(tenant, membership, user, error.detail),
            },
        )
    return MemberWrite(request, tenant, members, member_id)


class MembersController(Controller):
    """The member list, and leaving it."""

    path = "/members"
    exception_handlers = REFUSALS
    dependencies = {"page": Provide(provide_members_page, sync_to_thread=False)}

    @get("/", name="members.list", guards=[requires(Permission.MEMBERS_READ)], cache=False)
    async def list_members(
        self,
        page: NamedDependency[MembersPage],
        q: FromQuery[str | None] = None,
        sort: FromQuery[str | None] = None,
        dir: FromQuery[str | None] = None,
        after: FromQuery[str | None] = None,
        before: FromQuery[str | None] = None,
        at: FromQuery[str | None] = None,
    ) -> Template:
        listing = await member_listing(
            page.tenant,
            page.members,
            base_url=page.url,
            q=q,
            sort=sort,
            direction=dir,
            after=after,
            before=before,
            at=at,
        )
        if is_fragment(page.request):
            return HTMXTemplate(
                template_name="partials/members_results.html",
                context={"tenant": page.tenant, "listing": listing, "fragment": True},
                # The URL pushed (or, searching, replaced), canonical: default sort and page 1
                # left out.
                headers={**VARY, **history_headers(page.request.htmx.trigger, listing)},
            )
        return await page.render(listing=listing)

    @form_post("/leave", name="members.leave", permission=Permission.MEMBERS_READ)
    async def leave(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        members: NamedDependency[TenantMembers],
    ) -> Response[Any]:
        refuse_into(
            request,
            "partials/members_self.html",
            lambda error: {"tenant": tenant, "self_error": error.detail},
        )
        await members.leave()
        message = f"You left {tenant.organization.display_name}."
        elsewhere = request.app.route_reverse("select_organization")
        if not is_fragment(request):
            return redirect_with_flash(request, message, elsewhere)
        flash(request, message, category="success")
        return ClientRedirect(elsewhere)


def _with_article(role: str) -> str:
    """ "an admin", "a member": the toast says what the person now is, in a sentence."""
    return f"an {role}" if role[:1] in "aeiou" else f"a {role}"


def _removed(message: str) -> Response[Any]:
    """An empty body swapped over the row removes it; the list then reloads its page, so its
    count and rows are those of the organization now."""
    removed = toast_only(message)
    removed.set_header("HX-Trigger-After-Settle", MEMBERS_CHANGED)
    return removed


class MemberController(Controller):
    """Changes to one member: each handler receives the member as `write`."""

    path = "/members/{member_id:uuid}"
    exception_handlers = REFUSALS
    dependencies = {"write": Provide(provide_member_write)}

    @form_post("/role", name="members.change_role", permission=Permission.MEMBERS_MANAGE)
    async def change_role(
        self, write: NamedDependency[MemberWrite], data: RoleBody
    ) -> Response[Any]:
        membership = await write.members.change_role(write.member_id, data.role)
        user = await write.members.user_of(membership)
        message = f"{user.name or user.email} is now {_with_article(membership.role)}."
        if membership.user_id == write.tenant.user.id:
            return write.done(message, lambda: write.reload(message))
        # The swapped row says the new role is waiting for Auth0, as a reload would.
        sync = (await write.members.sync_of([user.id])).get(user.id)
        row = member_row(write.tenant, membership, user, sync=sync)
        return write.done(
            message,
            lambda: HTMXTemplate(
                template_name="partials/members_row.html",
                context={"tenant": write.tenant, "row": row},
                **toast(message),
            ),
        )

    @form_post("/remove", name="members.remove", permission=Permission.MEMBERS_MANAGE)
    async def remove_member(self, write: NamedDependency[MemberWrite]) -> Response[Any]:
        removed = await write.members.remove(write.member_id)
        who = await write.members.name_of(removed)
        message = f"{who} was removed from the organization."
        return write.done(message, lambda: _removed(message))

    @form_post(
        "/transfer-ownership", name="members.transfer_ownership", permission=Permission.OWNERSHIP
    )
    async def transfer_ownership(self, write: NamedDependency[MemberWrite]) -> Response[Any]:
        new_owner, _ = await write.members.transfer_ownership(write.member_id)
        who = await write.members.name_of(new_owner)
        message = f"{who} is now the owner, and you are an admin."
        # Two rows and the viewer's own powers changed.
        return write.done(message, lambda: write.reload(message))
