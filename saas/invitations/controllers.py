"""Invitations on the members page: invite (a batch, all or nothing), resend, revoke.

The rules, the batch's all-or-nothing among them, live in `InvitationService`; this module
only parses the form and renders the invite card and the pending-invitations panel.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated
from uuid import UUID

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.config import Settings
from saas.errors import DomainError
from saas.invitations.services import BatchRefused, InvitationService
from saas.login.current_user import actor_from
from saas.members.controllers import (
    InviteForm,
    invitation_listing,
    is_fragment,
    members_page,
    members_url,
    toast,
)
from saas.tenancy.authority import AuthorityRefused
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.tenancy.policy import grantable_roles
from saas.web.input import MultiLine, SingleLine

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


class InvitationsController(Controller):
    path = "/members/invitations"

    async def _invite_refused(
        self,
        request: HTMXRequest,
        tenant: TenantContext,
        db: AsyncSession,
        form: InviteForm,
        status_code: int,
    ) -> Template:
        if not is_fragment(request):
            return await members_page(tenant, db, invite=form, status_code=status_code)
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
        settings: NamedDependency[Settings],
        data: InviteBody,
    ) -> Template | Redirect:
        raw = (data.emails or data.email)[:20_000]
        form = InviteForm(emails=raw, role=data.role)
        emails = split_emails(raw)
        try:
            invited = await InvitationService(session=db_session).invite_many(
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
                request, tenant, db_session, form, refused.status_code
            )
        if not is_fragment(request):
            return Redirect(path=members_url(tenant), status_code=303)
        message = (
            f"Invitation sent to {invited[0][0].email}."
            if len(invited) == 1
            else f"{len(invited)} invitations sent."
        )
        return Template(
            "partials/invitations_invite.html",
            context={
                "tenant": tenant,
                "invite": InviteForm(role=data.role),
                "grantable": grantable_roles(tenant.role),
                "invitations": await invitation_listing(tenant, db_session),
                "oob_invitations": True,
            },
            headers=toast(message),
        )

    async def _panel(
        self,
        request: HTMXRequest,
        tenant: TenantContext,
        db: AsyncSession,
        *,
        message: str | None = None,
        error: DomainError | None = None,
    ) -> Template | Redirect:
        if error is not None and not is_fragment(request):
            return await members_page(
                tenant,
                db,
                invitations=await invitation_listing(tenant, db, error.detail),
                status_code=error.status_code,
            )
        if not is_fragment(request):
            return Redirect(path=members_url(tenant), status_code=303)
        return Template(
            "partials/invitations_panel.html",
            context={
                "tenant": tenant,
                "invitations": await invitation_listing(
                    tenant, db, error.detail if error else None
                ),
            },
            status_code=error.status_code if error else 200,
            headers=toast(message) if message else None,
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
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        invitation_id: FromPath[UUID],
    ) -> Template | Redirect:
        try:
            invitation, _ = await InvitationService(session=db_session).resend(
                organization_id=tenant.organization.id,
                invitation_id=invitation_id,
                actor=actor_from(request, tenant.user),
                authority=tenant.acting,
                ttl=datetime.timedelta(days=settings.invitation_ttl_days),
            )
        except DomainError as error:
            if isinstance(error, AuthorityRefused) or error.status_code == 404:
                raise
            return await self._panel(request, tenant, db_session, error=error)
        return await self._panel(
            request, tenant, db_session, message=f"Invitation sent again to {invitation.email}."
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
        db_session: NamedDependency[AsyncSession],
        invitation_id: FromPath[UUID],
    ) -> Template | Redirect:
        try:
            invitation = await InvitationService(session=db_session).revoke(
                organization_id=tenant.organization.id,
                invitation_id=invitation_id,
                actor=actor_from(request, tenant.user),
                authority=tenant.acting,
            )
        except DomainError as error:
            if isinstance(error, AuthorityRefused) or error.status_code == 404:
                raise
            return await self._panel(request, tenant, db_session, error=error)
        return await self._panel(
            request, tenant, db_session, message=f"Invitation for {invitation.email} revoked."
        )
