"""Invitations on the members page: invite (a batch, all or nothing), resend, revoke.

The rules live in `InvitationService`; this module only parses the form, runs the batch and
renders the invite card and the pending-invitations panel.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.plugins.htmx import HTMXRequest, HTMXTemplate
from litestar.response import Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.config import Settings
from saas.invitations.services import BatchRefused, InvitationService
from saas.invitations.views import InviteForm, invitation_listing
from saas.login.current_user import actor_from
from saas.members.services import MembershipService
from saas.members.views import members_page, members_url
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.tenancy.policy import grantable_roles
from saas.web.htmx import is_fragment, toast
from saas.web.input import MultiLine, SingleLine
from saas.web.refusals import REFUSALS, redirect_with_flash, refuse_into

_SEPARATORS = re.compile(r"[,;\s]+")


class InviteFormData(Struct):
    emails: MultiLine = ""  # one address a line, or separated by commas
    email: SingleLine = ""  # a single address (API-style clients, the route matrix)
    role: SingleLine = "member"


InviteBody = Annotated[InviteFormData, Body(media_type=RequestEncodingType.URL_ENCODED)]


def split_emails(raw: str) -> list[str]:
    """Comma-, semicolon- or newline-separated addresses, duplicates dropped, order kept."""
    seen: set[str] = set()
    result = []
    for part in _SEPARATORS.split(raw):
        candidate = part.strip()
        if candidate and candidate.lower() not in seen:
            seen.add(candidate.lower())
            result.append(candidate)
    return result


def refuse_into_panel(request: Request[Any, Any, Any]) -> None:
    """A refused resend or revoke shows its reason at the top of the pending-invitations panel,
    replacing only that message (the list needs a query to render)."""
    refuse_into(
        request,
        "partials/invitations_error.html",
        lambda error: {"error": error.detail},
        re_target="#invitations-error",
        re_swap="outerHTML",
    )


class InvitationsController(Controller):
    path = "/members/invitations"
    exception_handlers = REFUSALS

    async def _invite_refused(
        self,
        request: HTMXRequest,
        tenant: TenantContext,
        db: AsyncSession,
        memberships: MembershipService,
        invitations: InvitationService,
        form: InviteForm,
        status_code: int,
    ) -> Template:
        if not is_fragment(request):
            # The whole page, so the form keeps what was typed beside its errors.
            return await members_page(
                request,
                tenant,
                db,
                memberships=memberships,
                invitations=invitations,
                invite=form,
                status_code=status_code,
            )
        return Template(
            "partials/invitations_invite.html",
            context={
                "tenant": tenant,
                "invite": form,
                "grantable": grantable_roles(tenant.role),
            },
            status_code=status_code,
        )

    @post(
        "/",
        name="invitations.create",
        guards=[requires(Permission.MEMBERS_INVITE)],
        status_code=200,
    )
    async def invite(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        memberships: NamedDependency[MembershipService],
        invitations: NamedDependency[InvitationService],
        settings: NamedDependency[Settings],
        data: InviteBody,
    ) -> Response[Any]:
        raw = (data.emails or data.email)[:20_000]
        form = InviteForm(emails=raw, role=data.role)
        emails = split_emails(raw)
        try:
            invited = await invitations.invite_many(
                organization_id=tenant.organization.id,
                emails=emails,
                role=data.role,
                actor=actor_from(request, tenant.user),
                authority=tenant.acting,
                ttl=datetime.timedelta(days=settings.invitation_ttl_days),
            )
        except BatchRefused as refused:
            for failure in refused.failures:
                key = "role" if failure.field == "role" else "email"
                messages = form.errors.setdefault(key, [])
                if failure.detail not in messages:
                    messages.append(failure.detail)
            if len(emails) > 1:
                form.errors["batch"] = [
                    "Nobody was invited: the whole list is sent only once every address is fine."
                ]
            return await self._invite_refused(
                request, tenant, db_session, memberships, invitations, form, refused.status_code
            )
        message = (
            f"Invitation sent to {invited[0][0].email}."
            if len(invited) == 1
            else f"{len(invited)} invitations sent."
        )
        if not is_fragment(request):
            return redirect_with_flash(request, message, members_url(request, tenant))
        return HTMXTemplate(
            template_name="partials/invitations_invite.html",
            context={
                "tenant": tenant,
                "invite": InviteForm(role=data.role),
                "grantable": grantable_roles(tenant.role),
                "invitations": await invitation_listing(tenant, invitations),
                "oob_invitations": True,
                "sent": message,
            },
            **toast(message),
        )

    async def _panel(
        self,
        request: HTMXRequest,
        tenant: TenantContext,
        invitations: InvitationService,
        message: str,
    ) -> Response[Any]:
        if not is_fragment(request):
            return redirect_with_flash(request, message, members_url(request, tenant))
        listing = await invitation_listing(tenant, invitations)
        return HTMXTemplate(
            template_name="partials/invitations_panel.html",
            context={"tenant": tenant, "invitations": listing},
            **toast(message),
        )

    @post(
        "/{invitation_id:uuid}/resend",
        name="invitations.resend",
        guards=[requires(Permission.MEMBERS_INVITE)],
        status_code=200,
    )
    async def resend(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        invitations: NamedDependency[InvitationService],
        settings: NamedDependency[Settings],
        invitation_id: FromPath[UUID],
    ) -> Response[Any]:
        refuse_into_panel(request)
        invitation, _ = await invitations.resend(
            organization_id=tenant.organization.id,
            invitation_id=invitation_id,
            actor=actor_from(request, tenant.user),
            authority=tenant.acting,
            ttl=datetime.timedelta(days=settings.invitation_ttl_days),
        )
        return await self._panel(
            request, tenant, invitations, f"Invitation sent again to {invitation.email}."
        )

    @post(
        "/{invitation_id:uuid}/revoke",
        name="invitations.revoke",
        guards=[requires(Permission.MEMBERS_INVITE)],
        status_code=200,
    )
    async def revoke(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        invitations: NamedDependency[InvitationService],
        invitation_id: FromPath[UUID],
    ) -> Response[Any]:
        refuse_into_panel(request)
        invitation = await invitations.revoke(
            organization_id=tenant.organization.id,
            invitation_id=invitation_id,
            actor=actor_from(request, tenant.user),
            authority=tenant.acting,
        )
        return await self._panel(
            request, tenant, invitations, f"Invitation for {invitation.email} revoked."
        )
