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

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.flash import flash
from litestar.plugins.htmx import ClientRedirect, ClientRefresh, HTMXRequest, HTMXTemplate
from litestar.response import Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.db.models import User
from saas.invitations.services import InvitationService
from saas.login.current_user import actor_from
from saas.members.services import MembershipService
from saas.members.views import (
    MEMBERS_CHANGED,
    history_headers,
    member_listing,
    member_row,
    members_page,
    members_url,
)
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.web.htmx import VARY, is_fragment, toast, toast_only
from saas.web.input import SingleLine
from saas.web.refusals import REFUSALS, redirect_with_flash, refuse_into


class RoleForm(Struct):
    role: SingleLine = ""


RoleBody = Annotated[RoleForm, Body(media_type=RequestEncodingType.URL_ENCODED)]


async def refuse_into_row(
    request: Request[Any, Any, Any],
    tenant: TenantContext,
    db: AsyncSession,
    memberships: MembershipService,
    membership_id: UUID,
) -> None:
    """Load the member's row before the change, so that a refusal (rendered without a query)
    shows it as it stands, the reason beside its controls. The service re-reads the same
    objects under its lock, so the row shows what the refusal saw. An id that is no member
    here declares nothing: the service answers it with its 404."""
    membership = await memberships.find_by_id(tenant.organization.id, membership_id)
    user = await db.get(User, membership.user_id) if membership is not None else None
    if membership is None or user is None:
        return
    refuse_into(
        request,
        "partials/members_row.html",
        lambda error: {"tenant": tenant, "row": member_row(tenant, membership, user, error.detail)},
    )


class MembersController(Controller):
    path = "/members"
    exception_handlers = REFUSALS

    @get("/", name="members.list", guards=[requires(Permission.MEMBERS_READ)], cache=False)
    async def list_members(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        memberships: NamedDependency[MembershipService],
        invitations: NamedDependency[InvitationService],
        q: FromQuery[str | None] = None,
        sort: FromQuery[str | None] = None,
        dir: FromQuery[str | None] = None,
        after: FromQuery[str | None] = None,
        before: FromQuery[str | None] = None,
        at: FromQuery[str | None] = None,
    ) -> Template:
        listing = await member_listing(
            tenant,
            memberships,
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
                # The URL pushed (or, searching, replaced), canonical: default sort and page 1
                # left out.
                headers={**VARY, **history_headers(request.htmx.trigger, listing)},
            )
        return await members_page(
            request,
            tenant,
            db_session,
            memberships=memberships,
            invitations=invitations,
            listing=listing,
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
        memberships: NamedDependency[MembershipService],
        member_id: FromPath[UUID],
        data: RoleBody,
    ) -> Response[Any]:
        await refuse_into_row(request, tenant, db_session, memberships, member_id)
        membership = await memberships.change_role(
            organization_id=tenant.organization.id,
            membership_id=member_id,
            role=data.role,
            actor=actor_from(request, tenant.user),
            authority=tenant.acting,
        )
        user = await db_session.get(User, membership.user_id)  # loaded with the row already
        assert user is not None
        message = f"{user.name or user.email} is now {membership.role}."
        if not is_fragment(request):
            return redirect_with_flash(request, message, members_url(request, tenant))
        if membership.user_id == tenant.user.id:
            # Your own role changed, and what you may do with it: the page reloads, and says so.
            flash(request, message, category="success")
            return ClientRefresh()
        # The swapped row says the new role is waiting for Auth0, as a reload would.
        sync = (await memberships.sync_of(tenant.organization.id, [user.id])).get(user.id)
        return HTMXTemplate(
            template_name="partials/members_row.html",
            context={"tenant": tenant, "row": member_row(tenant, membership, user, sync=sync)},
            **toast(message),
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
        memberships: NamedDependency[MembershipService],
        member_id: FromPath[UUID],
    ) -> Response[Any]:
        await refuse_into_row(request, tenant, db_session, memberships, member_id)
        membership = await memberships.remove(
            organization_id=tenant.organization.id,
            membership_id=member_id,
            actor=actor_from(request, tenant.user),
            authority=tenant.acting,
        )
        user = await db_session.get(User, membership.user_id)
        who = (user.name or user.email) if user else "The member"
        message = f"{who} was removed from the organization."
        if not is_fragment(request):
            return redirect_with_flash(request, message, members_url(request, tenant))
        # An empty body swapped over the row removes it; the list then reloads its page, so
        # its count and rows are those of the organization now.
        removed = toast_only(message)
        removed.set_header("HX-Trigger-After-Settle", MEMBERS_CHANGED)
        return removed

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
        memberships: NamedDependency[MembershipService],
        member_id: FromPath[UUID],
    ) -> Response[Any]:
        await refuse_into_row(request, tenant, db_session, memberships, member_id)
        new_owner, _ = await memberships.transfer_ownership(
            organization_id=tenant.organization.id,
            membership_id=member_id,
            actor=actor_from(request, tenant.user),
        )
        user = await db_session.get(User, new_owner.user_id)
        who = (user.name or user.email) if user else "The member"
        message = f"{who} is now the owner, and you are an admin."
        if not is_fragment(request):
            return redirect_with_flash(request, message, members_url(request, tenant))
        # Two rows and the viewer's own powers changed: the page reloads, and says so.
        flash(request, message, category="success")
        return ClientRefresh()

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
        memberships: NamedDependency[MembershipService],
    ) -> Response[Any]:
        refuse_into(
            request,
            "partials/members_self.html",
            lambda error: {"tenant": tenant, "self_error": error.detail},
        )
        await memberships.leave(
            organization_id=tenant.organization.id,
            user_id=tenant.user.id,
            actor=actor_from(request, tenant.user),
        )
        message = f"You left {tenant.organization.display_name}."
        elsewhere = request.app.route_reverse("select_organization")
        if not is_fragment(request):
            return redirect_with_flash(request, message, elsewhere)
        flash(request, message, category="success")
        return ClientRedirect(elsewhere)
