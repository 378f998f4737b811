"""Invitations on the members page: invite (a batch, all or nothing), resend, revoke.

The rules live in `InvitationService`; this module only parses the form, runs the batch and
renders the invite card and the pending-invitations panel.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated
from uuid import UUID

from litestar import Controller, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.config import Settings
from saas.errors import Conflict, DomainError, InvalidInput
from saas.invitations.services import InvitationService
from saas.login.current_user import actor_from
from saas.members.controllers import (
    InviteForm,
    invitation_listing,
    is_fragment,
    members_page,
    members_url,
    toast,
)
from saas.members.services import MembershipService, parse_role
from saas.organizations.domains import normalize_email
from saas.tenancy.authority import AuthorityRefused
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import provide_tenant, requires
from saas.tenancy.permissions import Permission
from saas.tenancy.policy import check_may_grant, grantable_roles
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


class InvitationsController(Controller):
    path = "/o/{slug:str}/members/invitations"
    include_in_schema = False
    dependencies = {"tenant": Provide(provide_tenant)}

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

    async def _precheck(
        self,
        tenant: TenantContext,
        db: AsyncSession,
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
        members = await MembershipService(session=db).member_emails(
            tenant.organization.id, normalized
        )
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
        settings: NamedDependency[Settings],
        data: InviteBody,
    ) -> Template | Redirect:
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
        service = InvitationService(session=db_session)
        actor = actor_from(request, tenant.user)
        ttl = datetime.timedelta(days=settings.invitation_ttl_days)
        invited: list[str] = []
        if failures:
            # The batch is refused already: still report every malformed address at once.
            failures.extend(malformed(email) for email in emails[:MAX_BATCH] if not is_email(email))
        else:
            failures.extend(await self._precheck(tenant, db_session, service, emails))
        if not failures:
            # Each invite checks its rules again (a racing request may have invited someone
            # meanwhile); any refusal refuses the whole batch, and the error status makes the
            # request's transaction roll back, so nothing is written.
            for email in emails:
                try:
                    invitation, _ = await service.invite(
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
                request, tenant, db_session, form, _status_for(failures)
            )
        if not is_fragment(request):
            return Redirect(path=members_url(tenant), status_code=303)
        message = (
            f"Invitation sent to {invited[0]}."
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
