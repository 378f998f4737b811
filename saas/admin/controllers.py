"""The operator console at /admin: platform operators only; everyone else gets a 404."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor
from saas.auth0.jobs import CONNECTION_TARGET, INVITATION_TARGET, ORGANIZATION_TARGET
from saas.auth0.sync_state import retry_failed, sync_state, sync_states
from saas.config import Settings
from saas.db.models import Invitation, Organization, OrganizationStatus, OutboxJob, OutboxStatus
from saas.errors import DomainError, InvalidInput
from saas.invitations.services import InvitationService
from saas.login.current_user import actor_from, load_current_user, memberships_of
from saas.organizations.services import CONNECTION_STRATEGIES, OrganizationService
from saas.organizations.settings import domain_rows
from saas.services import OPERATOR_SERVICES, SsoForOrganization
from saas.sso.forms import SsoForm, validate_form
from saas.tenancy.guards import requires_platform_operator
from saas.tenancy.permissions import Role
from saas.tenancy.routers import PRIVATE, PRIVATE_OPT
from saas.web.input import MultiLine, SingleLine

FormBody = Body(media_type=RequestEncodingType.URL_ENCODED)


class CreateOrganizationForm(Struct):
    slug: SingleLine = ""
    display_name: SingleLine = ""
    default_role: SingleLine = "member"
    jit_provisioning: SingleLine = ""
    require_sso: SingleLine = ""
    domains: MultiLine = ""
    # A new enterprise connection, validated and created at Auth0 (as in self-service SSO):
    sso_strategy: SingleLine = ""  # "", "oidc" or "samlp"
    discovery_url: SingleLine = ""
    client_id: SingleLine = ""
    client_secret: SingleLine = ""
    metadata_xml: MultiLine = ""
    owner_email: SingleLine = ""


class DomainForm(Struct):
    domain: SingleLine = ""


class ConnectionForm(Struct):
    name: SingleLine = ""
    strategy: SingleLine = ""
    display_name: SingleLine = ""
    auth0_connection_id: SingleLine = ""


class OwnerForm(Struct):
    email: SingleLine = ""


class StatusForm(Struct):
    status: SingleLine = ""


def _checked(value: str) -> bool:
    return value in {"on", "true", "1", "yes"}


def _split(values: str) -> list[str]:
    return [v.strip() for v in values.replace("\n", ",").split(",") if v.strip()]


async def operator_layout(
    request: Request[Any, Any, Any], db: AsyncSession, **extra: Any
) -> dict[str, Any]:
    user = await load_current_user(request, db)
    assert user is not None  # the guard ran
    return {"user": user, "memberships": await memberships_of(db, user), **extra}


@dataclass(frozen=True, slots=True)
class OperatedOrganization:
    """The organization an operator's page or action at `/admin/organizations/{slug}` is about,
    as its handler receives it (`target`), with who acts (for the audit log)."""

    request: Request[Any, Any, Any]
    db: AsyncSession
    organizations: OrganizationService
    org: Organization
    actor: Actor

    async def page(self, error: DomainError | None = None, status_code: int = 200) -> Template:
        org, db = self.org, self.db
        # Each with its TXT record, and whether another organization has verified it (then
        # there is nothing to verify: the tenant's settings page shows it the same way).
        domains = await domain_rows(db, org.id)
        invitations = list(
            (
                await db.execute(
                    select(Invitation)
                    .where(
                        Invitation.organization_id == org.id, Invitation.role == Role.OWNER.value
                    )
                    .order_by(Invitation.created_at.desc())
                )
            ).scalars()
        )
        connections = await self.organizations.connections_of(org.id)
        now = datetime.datetime.now(datetime.UTC)
        return Template(
            "admin/organization.html",
            context=await operator_layout(
                self.request,
                db,
                org=org,
                domains=domains,
                connections=connections,
                owner_invitations=[(i, i.status(now)) for i in invitations],
                # Where Auth0 stands on each, from the outbox jobs (no Auth0 call).
                org_sync=await sync_state(db, org.id, ORGANIZATION_TARGET, org.id),
                connection_sync=await sync_states(
                    db, org.id, CONNECTION_TARGET, [c.id for c in connections]
                ),
                invitation_sync=await sync_states(
                    db, org.id, INVITATION_TARGET, [i.id for i in invitations]
                ),
                strategies=sorted(CONNECTION_STRATEGIES),
                error=error,
            ),
            status_code=status_code,
        )

    async def act(self, action: Callable[[], Awaitable[str]]) -> Template | Redirect:
        """Run `action`, back to the organization's page saying what it did (its return
        value); a refusal is shown on that page, with what the operator sees there."""
        try:
            done = await action()
        except DomainError as error:
            if error.status_code == 404 and error.field is None:
                raise
            return await self.page(error=error, status_code=error.status_code)
        flash(self.request, done, "success")
        return _to_organization(self.request, self.org)


# Reads through the request's session: keep it the only async dependency at its depth that
# does, since Litestar resolves dependencies of one depth concurrently.
async def provide_operated_organization(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    organizations: NamedDependency[OrganizationService],
    slug: FromPath[str],
) -> OperatedOrganization:
    org = await organizations.get_by_slug(slug)
    actor = actor_from(request, await load_current_user(request, db_session))
    return OperatedOrganization(request, db_session, organizations, org, actor)


class AdminController(Controller):
    path = "/admin"
    include_in_schema = False
    guards = [requires_platform_operator]
    opt = {PRIVATE_OPT: True}
    cache_control = PRIVATE
    dependencies = {**OPERATOR_SERVICES, "target": Provide(provide_operated_organization)}

    @get("/", name="admin.home")
    async def home(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        organizations: NamedDependency[OrganizationService],
        q: FromQuery[str | None] = None,
    ) -> Template:
        page = await organizations.overview(search=q, limit=200)
        failed = await db_session.scalar(
            select(OutboxJob.id).where(OutboxJob.status == OutboxStatus.FAILED.value).limit(1)
        )
        return Template(
            "admin/home.html",
            context=await operator_layout(
                request,
                db_session,
                organizations=page.items,
                total=page.total,
                q=q or "",
                has_failed=failed is not None,
            ),
        )

    @get("/organizations/new", name="admin.new_organization")
    async def new_organization(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
    ) -> Template:
        return Template(
            "admin/new_organization.html",
            context=await operator_layout(
                request,
                db_session,
                form=CreateOrganizationForm(),
                strategies=sorted(CONNECTION_STRATEGIES),
            ),
        )

    @post("/organizations", name="admin.create_organization")
    async def create_organization(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        organizations: NamedDependency[OrganizationService],
        invitation_service: NamedDependency[InvitationService],
        sso_for: NamedDependency[SsoForOrganization],
        data: Annotated[CreateOrganizationForm, FormBody],
    ) -> Template | Redirect:
        try:
            # First, before anything is read or written: validating an OIDC connection fetches
            # its discovery document, and no transaction may be open during a network call.
            validated = (
                await validate_form(
                    SsoForm(
                        strategy=data.sso_strategy,
                        discovery_url=data.discovery_url,
                        client_id=data.client_id,
                        client_secret=data.client_secret,
                        metadata_xml=data.metadata_xml,
                    ),
                    settings,
                )
                if data.sso_strategy
                else None
            )
            actor = actor_from(request, await load_current_user(request, db_session))
            org = await organizations.create_organization(
                slug=data.slug,
                display_name=data.display_name,
                actor=actor,
                default_role=data.default_role,
                jit_provisioning=_checked(data.jit_provisioning),
                require_sso=_checked(data.require_sso),
            )
            for domain in _split(data.domains):
                await organizations.add_domain(organization_id=org.id, domain=domain, actor=actor)
            if validated is not None:
                await sso_for(org, actor).save(
                    validated,
                    display_name=f"{org.display_name} SSO",
                    assign_membership_on_login=org.jit_provisioning,
                )
            if data.owner_email.strip():
                await invitation_service.invite(
                    organization_id=org.id,
                    email=data.owner_email,
                    role=Role.OWNER,
                    actor=actor,
                    authority=None,
                    ttl=datetime.timedelta(days=settings.invitation_ttl_days),
                )
        except DomainError as error:
            # Nothing of the half-built organization survives: the request's transaction rolls
            # back on this non-2xx answer.
            return Template(
                "admin/new_organization.html",
                context=await operator_layout(
                    request,
                    db_session,
                    form=data,
                    error=error,
                    strategies=sorted(CONNECTION_STRATEGIES),
                ),
                status_code=error.status_code,
            )
        flash(request, f"{org.display_name} was created.", "success")
        return _to_organization(request, org)

    @get("/organizations/{slug:str}", name="admin.organization")
    async def organization(self, target: NamedDependency[OperatedOrganization]) -> Template:
        return await target.page()

    @post("/organizations/{slug:str}/domains", name="admin.add_domain")
    async def add_domain(
        self,
        target: NamedDependency[OperatedOrganization],
        data: Annotated[DomainForm, FormBody],
    ) -> Template | Redirect:
        org, actor = target.org, target.actor

        async def action() -> str:
            record = await target.organizations.add_domain(
                organization_id=org.id, domain=data.domain, actor=actor
            )
            return f"{record.domain} was added. Publish its TXT record, then verify it."

        return await target.act(action)

    @post("/organizations/{slug:str}/domains/verify", name="admin.verify_domain")
    async def verify_domain(
        self,
        target: NamedDependency[OperatedOrganization],
        settings: NamedDependency[Settings],
        data: Annotated[DomainForm, FormBody],
    ) -> Template | Redirect:
        org, actor = target.org, target.actor

        async def action() -> str:
            record = await target.organizations.verify_domain(
                organization_id=org.id,
                domain=data.domain,
                actor=actor,
                nameserver=settings.dns_nameserver,
            )
            return f"{record.domain} is verified."

        return await target.act(action)

    @post("/organizations/{slug:str}/connections", name="admin.add_connection")
    async def add_connection(
        self,
        target: NamedDependency[OperatedOrganization],
        data: Annotated[ConnectionForm, FormBody],
    ) -> Template | Redirect:
        org, actor = target.org, target.actor

        async def action() -> str:
            if not data.name.strip():
                raise InvalidInput("Give the Auth0 connection's name.", field="name")
            connection = await target.organizations.add_connection(
                organization_id=org.id,
                name=data.name.strip(),
                strategy=data.strategy,
                display_name=data.display_name.strip() or data.name.strip(),
                auth0_connection_id=data.auth0_connection_id.strip() or None,
                actor=actor,
            )
            return f"The connection {connection.auth0_connection_name} was attached."

        return await target.act(action)

    @post("/organizations/{slug:str}/invite-owner", name="admin.invite_owner")
    async def invite_owner(
        self,
        target: NamedDependency[OperatedOrganization],
        settings: NamedDependency[Settings],
        invitation_service: NamedDependency[InvitationService],
        data: Annotated[OwnerForm, FormBody],
    ) -> Template | Redirect:
        org, actor = target.org, target.actor

        async def action() -> str:
            invitation, _ticket = await invitation_service.invite(
                organization_id=org.id,
                email=data.email,
                role=Role.OWNER,
                actor=actor,
                authority=None,
                ttl=datetime.timedelta(days=settings.invitation_ttl_days),
            )
            return f"{invitation.email} is invited as an owner."

        return await target.act(action)

    @post("/organizations/{slug:str}/status", name="admin.set_status")
    async def set_status(
        self,
        target: NamedDependency[OperatedOrganization],
        data: Annotated[StatusForm, FormBody],
    ) -> Template | Redirect:
        org, actor = target.org, target.actor

        async def action() -> str:
            try:
                status = OrganizationStatus(data.status)
            except ValueError:
                raise InvalidInput("Choose active or suspended.", field="status") from None
            await target.organizations.set_status(
                organization_id=org.id, status=status, actor=actor
            )
            return f"{org.display_name} is {status.value} now."

        return await target.act(action)

    @get("/outbox", name="admin.outbox")
    async def outbox(
        self, request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
    ) -> Template:
        # Each with the organization it is for (none for jobs older than their target).
        jobs = (
            await db_session.execute(
                select(OutboxJob, Organization)
                .outerjoin(Organization, Organization.id == OutboxJob.organization_id)
                .where(OutboxJob.status == OutboxStatus.FAILED.value)
                .order_by(OutboxJob.updated_at.desc())
                .limit(200)
            )
        ).all()
        return Template(
            "admin/outbox.html",
            context=await operator_layout(
                request, db_session, jobs=[(job, org) for job, org in jobs]
            ),
        )

    @post("/outbox/{job_id:uuid}/retry", name="admin.retry_job")
    async def retry_job(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        job_id: FromPath[UUID],
    ) -> Redirect:
        job = await retry_failed(db_session, job_id, None)  # any organization's
        flash(request, f"The {job.kind} job is queued again.", "success")
        return Redirect(path=request.app.route_reverse("admin.outbox"), status_code=303)


def _to_organization(request: Request[Any, Any, Any], org: Organization) -> Redirect:
    return Redirect(
        path=request.app.route_reverse("admin.organization", slug=org.slug), status_code=303
    )
