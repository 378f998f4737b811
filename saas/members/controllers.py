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

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.flash import flash
from litestar.plugins.htmx import ClientRedirect, ClientRefresh, HTMXRequest, HTMXTemplate
from litestar.response import Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.db.models import Membership, User
from saas.invitations.services import TenantInvitations
from saas.members.services import TenantMembers
from saas.members.views import member_listing, member_row, members_page, members_url
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


async def refuse_into_row(
    request: Request[Any, Any, Any], tenant: TenantContext, members: TenantMembers, member_id: UUID
) -> None:
    """Load the member's row before the change, so that a refusal (rendered without a query)
    shows it as it stands, the reason beside its controls. The service re-reads the same
    objects under its lock, so the row shows what the refusal saw. An id that is no member
    here declares nothing: the service answers it with its 404."""
    found = await members.find_with_user(member_id)
    if found is None:
        return
    membership, user = found
    refuse_into(
        request,
        "partials/members_row.html",
        lambda error: {"tenant": tenant, "row": member_row(tenant, membership, user, error.detail)},
    )


def display_name(user: User) -> str:
    return user.name or user.email


class MembersController(Controller):
    path = "/members"
    exception_handlers = REFUSALS

    @get("/", name="members.list", guards=[requires(Permission.MEMBERS_READ)], cache=False)
    async def list_members(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        members: NamedDependency[TenantMembers],
        invitations: NamedDependency[TenantInvitations],
        q: FromQuery[str | None] = None,
        sort: FromQuery[str | None] = None,
        dir: FromQuery[str | None] = None,
        after: FromQuery[str | None] = None,
        before: FromQuery[str | None] = None,
        at: FromQuery[str | None] = None,
    ) -> Template:
        listing = await member_listing(
            tenant,
            members,
            base_url=members_url(request, tenant),
            q=q,
            sort=sort,
            direction=dir,
            after=after,
            before=before,
            at=at,
        )
        if is_fragment(request):
            return HTMXTemplate(
                template_name="partials/members_results.html",
                context={"tenant": tenant, "listing": listing, "fragment": True},
                # The pushed URL, canonical: default sort and page 1 left out.
                push_url=listing.url(),
                headers=VARY,
            )
        return await members_page(
            request, tenant, db_session, members=members, invitations=invitations, listing=listing
        )

    @form_post(
        "/{member_id:uuid}/role", name="members.change_role", permission=Permission.MEMBERS_MANAGE
    )
    async def change_role(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        members: NamedDependency[TenantMembers],
        member_id: FromPath[UUID],
        data: RoleBody,
    ) -> Response[Any]:
        await refuse_into_row(request, tenant, members, member_id)
        membership = await members.change_role(member_id, data.role)
        user = await members.user_of(membership)
        message = f"{display_name(user)} is now {membership.role}."
        if not is_fragment(request):
            return redirect_with_flash(request, message, members_url(request, tenant))
        if membership.user_id == tenant.user.id:
            # Your own role changed, and what you may do with it: the page reloads, and says so.
            flash(request, message, category="success")
            return ClientRefresh()
        return await self._changed_row(tenant, members, membership, user, message)

    @staticmethod
    async def _changed_row(
        tenant: TenantContext,
        members: TenantMembers,
        membership: Membership,
        user: User,
        message: str,
    ) -> Response[Any]:
        # The swapped row says the new role is waiting for Auth0, as a reload would.
        sync = (await members.sync_of([user.id])).get(user.id)
        return HTMXTemplate(
            template_name="partials/members_row.html",
            context={"tenant": tenant, "row": member_row(tenant, membership, user, sync=sync)},
            **toast(message),
        )

    @form_post(
        "/{member_id:uuid}/remove", name="members.remove", permission=Permission.MEMBERS_MANAGE
    )
    async def remove_member(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        members: NamedDependency[TenantMembers],
        member_id: FromPath[UUID],
    ) -> Response[Any]:
        await refuse_into_row(request, tenant, members, member_id)
        removed = await members.remove(member_id)
        message = (
            f"{display_name(await members.user_of(removed))} was removed from the organization."
        )
        if not is_fragment(request):
            return redirect_with_flash(request, message, members_url(request, tenant))
        # An empty body swapped over the row removes it.
        return toast_only(message)

    @form_post(
        "/{member_id:uuid}/transfer-ownership",
        name="members.transfer_ownership",
        permission=Permission.OWNERSHIP,
    )
    async def transfer_ownership(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        members: NamedDependency[TenantMembers],
        member_id: FromPath[UUID],
    ) -> Response[Any]:
        await refuse_into_row(request, tenant, members, member_id)
        new_owner, _ = await members.transfer_ownership(member_id)
        who = display_name(await members.user_of(new_owner))
        message = f"{who} is now the owner, and you are an admin."
        if not is_fragment(request):
            return redirect_with_flash(request, message, members_url(request, tenant))
        # Two rows and the viewer's own powers changed: the page reloads, and says so.
        flash(request, message, category="success")
        return ClientRefresh()

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
