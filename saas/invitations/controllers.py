"""Invitations on the members page: invite (a batch, all or nothing), resend, revoke.

The rules live in `InvitationService`; this module only parses the form, runs the batch and
renders the invite card and the pending-invitations panel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Response
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.plugins.htmx import HTMXRequest, HTMXTemplate
from litestar.response import Template
from msgspec import Struct

from saas.invitations.services import BatchRefused, TenantInvitations
from saas.invitations.views import InviteForm, invitation_listing
from saas.members.views import MembersPage, members_url, provide_members_page
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


@dataclass(frozen=True, slots=True)
class InvitationWrite:
    """A change to one pending invitation, as its handler receives it (`write`)."""

    request: HTMXRequest
    tenant: TenantContext
    invitations: TenantInvitations
    invitation_id: UUID

    async def done(self, message: str) -> Response[Any]:
        """The pending-invitations panel again, with `message` (a plain form: the page)."""
        if not is_fragment(self.request):
            return redirect_with_flash(
                self.request, message, members_url(self.request, self.tenant)
            )
        listing = await invitation_listing(self.tenant, self.invitations)
        return HTMXTemplate(
            template_name="partials/invitations_panel.html",
            context={"tenant": self.tenant, "invitations": listing},
            **toast(message),
        )


def provide_invitation_write(
    request: HTMXRequest,
    tenant: NamedDependency[TenantContext],
    invitations: NamedDependency[TenantInvitations],
    invitation_id: FromPath[UUID],
) -> InvitationWrite:
    """A refused resend or revoke shows its reason at the top of the pending-invitations panel,
    replacing only that message (the list needs a query to render)."""
    refuse_into(
        request,
        "partials/invitations_error.html",
        lambda error: {"error": error.detail},
        re_target="#invitations-error",
        re_swap="outerHTML",
    )
    return InvitationWrite(request, tenant, invitations, invitation_id)


class InvitationsController(Controller):
    """Inviting: the invite form, one address or a batch."""

    path = "/members/invitations"
    exception_handlers = REFUSALS
    dependencies = {"page": Provide(provide_members_page, sync_to_thread=False)}

    @staticmethod
    async def _invite_refused(page: MembersPage, form: InviteForm, status_code: int) -> Template:
        if not is_fragment(page.request):
            # The whole page, so the form keeps what was typed beside its errors.
            return await page.render(invite=form, status_code=status_code)
        return Template(
            "partials/invitations_invite.html",
            context={
                "tenant": page.tenant,
                "invite": form,
                "grantable": grantable_roles(page.tenant.role),
            },
            status_code=status_code,
        )

    @form_post("/", name="invitations.create", permission=Permission.MEMBERS_INVITE)
    async def invite(self, page: NamedDependency[MembersPage], data: InviteBody) -> Response[Any]:
        request, tenant, invitations = page.request, page.tenant, page.invitations
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
            return await self._invite_refused(page, form, refused.status_code)
        message = (
            f"Invitation sent to {invited[0][0].email}."
            if len(invited) == 1
            else f"{len(invited)} invitations sent."
        )
        if not is_fragment(request):
            return redirect_with_flash(request, message, page.url)
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


class InvitationController(Controller):
    """Changes to one pending invitation: each handler receives it as `write`."""

    path = "/members/invitations/{invitation_id:uuid}"
    exception_handlers = REFUSALS
    dependencies = {"write": Provide(provide_invitation_write, sync_to_thread=False)}

    @form_post("/resend", name="invitations.resend", permission=Permission.MEMBERS_INVITE)
    async def resend(self, write: NamedDependency[InvitationWrite]) -> Response[Any]:
        invitation, _ = await write.invitations.resend(write.invitation_id)
        return await write.done(f"Invitation sent again to {invitation.email}.")

    @form_post("/revoke", name="invitations.revoke", permission=Permission.MEMBERS_INVITE)
    async def revoke(self, write: NamedDependency[InvitationWrite]) -> Response[Any]:
        invitation = await write.invitations.revoke(write.invitation_id)
        return await write.done(f"Invitation for {invitation.email} revoked.")
