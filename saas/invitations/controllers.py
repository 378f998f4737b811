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
from saas.errors import Conflict, DomainError, InvalidInput
from saas.invitations.services import InvitationService
from saas.invitations.views import InviteForm, invitation_listing
from saas.login.current_user import actor_from
from saas.members.services import MembershipService, check_may_grant, parse_role
from saas.members.views import grantable_roles, members_page, members_url
from saas.organizations.domains import normalize_email
from saas.tenancy.authority import AuthorityRefused
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.web.htmx import REFUSALS, is_fragment, redirect_with_flash, refuse_into, toast
from saas.web.input import MultiLine, SingleLine

MAX_BATCH = 20
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


def is_email(value: str) -> bool:
    try:
        normalize_email(value)
    except InvalidInput:
        return False
    return True


def malformed(value: str) -> InvalidInput:
    # One message for a bad local part and a bad domain: it is the address that is wrong.
    return InvalidInput(f"“{value[:320]}” is not a valid email address.", field="email")


def _status_for(errors: list[DomainError]) -> int:
    codes = {e.status_code for e in errors}
    for code in (422, 409, 403):
        if code in codes:
            return code
    return 422


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

    async def _precheck(
        self,
        tenant: TenantContext,
        memberships: MembershipService,
        service: InvitationService,
        emails: list[str],
    ) -> list[DomainError]:
        """Validate the whole batch before writing anything."""
        failures: list[DomainError] = []
        normalized: list[str] = []
        for email in emails:
            if is_email(email):
                normalized.append(normalize_email(email))
            else:
                failures.append(malformed(email))
        members = await memberships.member_emails(tenant.organization.id, normalized)
        for email in normalized:
            if email in members:
                failures.append(
                    Conflict(f"{email} is already a member of this organization.", field="email")
                )
            elif await service.find_pending(tenant.organization.id, email) is not None:
                failures.append(
                    Conflict(f"{email} already has a pending invitation.", field="email")
                )
        return failures

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
        failures: list[DomainError] = []
        if not emails:
            failures.append(InvalidInput("Enter at least one email address.", field="email"))
        elif len(emails) > MAX_BATCH:
            failures.append(
                InvalidInput(
                    f"Invite at most {MAX_BATCH} people at once (you entered {len(emails)}).",
                    field="email",
                )
            )
        try:
            check_may_grant(tenant.role, parse_role(data.role))
        except DomainError as error:
            failures.append(error)
        actor = actor_from(request, tenant.user)
        ttl = datetime.timedelta(days=settings.invitation_ttl_days)
        invited: list[str] = []
        if failures:
            # The batch is refused already: still report every malformed address at once.
            failures.extend(malformed(email) for email in emails[:MAX_BATCH] if not is_email(email))
        else:
            failures.extend(await self._precheck(tenant, memberships, invitations, emails))
        if not failures:
            # Each invite checks its rules again (a racing request may have invited someone
            # meanwhile); any refusal refuses the whole batch, and the error status makes the
            # request's transaction roll back, so nothing is written.
            for email in emails:
                try:
                    invitation, _ = await invitations.invite(
                        organization_id=tenant.organization.id,
                        email=email,
                        role=data.role,
                        actor=actor,
                        authority=tenant.acting,
                        ttl=ttl,
                    )
                    invited.append(invitation.email)
                except AuthorityRefused:
                    raise  # answered like the guard would have, not as a form error
                except DomainError as error:
                    failures.append(error)
        if failures:
            for failure in failures:
                key = "role" if failure.field == "role" else "email"
                messages = form.errors.setdefault(key, [])
                if failure.detail not in messages:
                    messages.append(failure.detail)
            if len(emails) > 1:
                form.errors["batch"] = [
                    "Nobody was invited: the whole list is sent only once every address is fine."
                ]
            return await self._invite_refused(
                request, tenant, db_session, memberships, invitations, form, _status_for(failures)
            )
        message = (
            f"Invitation sent to {invited[0]}."
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
