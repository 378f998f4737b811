"""Invitations on the members page: invite (a batch, all or nothing), resend, revoke.

The rules live in `InvitationService`; this module only parses the form, runs the batch and
renders the invite card and the pending-invitations panel.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.plugins.htmx import HTMXRequest, HTMXTemplate
from litestar.response import Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.invitations.services import BatchRefused, TenantInvitations
from saas.invitations.views import InviteForm, invitation_listing
from saas.members.services import TenantMembers
from saas.members.views import members_page, members_url
from saas.tenancy.context import TenantContext
from saas.tenancy.permissions import Permission
from saas.tenancy.policy import grantable_roles
from saas.tenancy.routers import form_post
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
        members: TenantMembers,
        invitations: TenantInvitations,
        form: InviteForm,
        status_code: int,
    ) -> Template:
        if not is_fragment(request):
            # The whole page, so the form keeps what was typed beside its errors.
            return await members_page(
                request,
                tenant,
                db,
                members=members,
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

    @form_post("/", name="invitations.create", permission=Permission.MEMBERS_INVITE)
    async def invite(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        members: NamedDependency[TenantMembers],
        invitations: NamedDependency[TenantInvitations],
        data: InviteBody,
    ) -> Response[Any]:
        raw = (data.emails or data.email)[:20_000]
        form = InviteForm(emails=raw, role=data.role)
        emails = split_emails(raw)
        try:
            invited = await invitations.invite_many(emails, data.role)
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
                request, tenant, db_session, members, invitations, form, refused.status_code
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
            },
            **toast(message),
        )

    async def _panel(
        self,
        request: HTMXRequest,
        tenant: TenantContext,
        invitations: TenantInvitations,
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

    @form_post(
        "/{invitation_id:uuid}/resend",
        name="invitations.resend",
        permission=Permission.MEMBERS_INVITE,
    )
    async def resend(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        invitations: NamedDependency[TenantInvitations],
        invitation_id: FromPath[UUID],
    ) -> Response[Any]:
        refuse_into_panel(request)
        invitation, _ = await invitations.resend(invitation_id)
        return await self._panel(
            request, tenant, invitations, f"Invitation sent again to {invitation.email}."
        )

    @form_post(
        "/{invitation_id:uuid}/revoke",
        name="invitations.revoke",
        permission=Permission.MEMBERS_INVITE,
    )
    async def revoke(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        invitations: NamedDependency[TenantInvitations],
        invitation_id: FromPath[UUID],
    ) -> Response[Any]:
        refuse_into_panel(request)
        invitation = await invitations.revoke(invitation_id)
        return await self._panel(
            request, tenant, invitations, f"Invitation for {invitation.email} revoked."
        )
