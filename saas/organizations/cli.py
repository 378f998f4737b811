"""Operator commands for scripted onboarding: `saas orgs ...` and `saas operators add`.

Each command is one transaction: it either does everything it says or nothing, and a refusal
prints one clear line and exits non-zero.
"""

from __future__ import annotations

import asyncio
import datetime
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor
from saas.config import ConfigurationError, Settings, load_settings
from saas.db.config import standalone_session
from saas.db.models import ConnectionStrategy, Organization, OrganizationStatus
from saas.errors import DomainError
from saas.invitations.services import InvitationService
from saas.organizations.dns_verification import record_name
from saas.organizations.services import DEFAULT_ROLES, OrganizationService
from saas.tenancy.permissions import Role
from saas.users.services import UserRepository

T = TypeVar("T")
CLI_ACTOR = Actor(user_id=None, user_agent="saas-cli")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)


def run_in_transaction(work: Callable[[AsyncSession, Settings], Awaitable[T]]) -> T:
    settings = _settings()

    async def runner() -> T:
        async with standalone_session(settings) as session:
            result = await work(session, settings)
            await session.commit()
            return result

    try:
        return asyncio.run(runner())
    except DomainError as error:
        click.echo(f"error: {error.detail}", err=True)
        sys.exit(1)


async def _org(session: AsyncSession, slug: str) -> Any:
    return await OrganizationService(session=session).get_by_slug(slug)


@click.group(name="orgs", help="Onboard and manage organizations.")
def orgs() -> None:
    pass


@orgs.command(name="create")
@click.argument("slug")
@click.option("--name", "display_name", required=True, help="Display name, e.g. 'Initech'.")
@click.option(
    "--default-role", type=click.Choice([role.value for role in DEFAULT_ROLES]), default="member"
)
@click.option("--jit/--no-jit", default=False, help="Just-in-time membership for its domains.")
@click.option("--require-sso/--no-require-sso", default=False)
@click.option("--domain", "domains", multiple=True, help="An email domain (repeatable).")
def create(
    slug: str,
    display_name: str,
    default_role: str,
    jit: bool,
    require_sso: bool,
    domains: tuple[str, ...],
) -> None:
    """Create an organization (and its Auth0 organization, through the outbox)."""

    async def work(session: AsyncSession, _: Settings) -> list[str]:
        service = OrganizationService(session=session)
        org = await service.create_organization(
            slug=slug,
            display_name=display_name,
            actor=CLI_ACTOR,
            default_role=default_role,
            jit_provisioning=jit,
            require_sso=require_sso,
        )
        records = [
            await service.add_domain(organization_id=org.id, domain=d, actor=CLI_ACTOR)
            for d in domains
        ]
        return [f"{record_name(r.domain)} TXT {r.verification_token}" for r in records]

    for line in (txt := run_in_transaction(work)):
        click.echo(f"add this DNS record, then run verify-domain: {line}")
    click.echo(f"created organization {slug}" + (f" with {len(txt)} domain(s)" if txt else ""))


@orgs.command(name="list")
@click.option("--search", default=None)
def list_(search: str | None) -> None:
    async def work(session: AsyncSession, _: Settings) -> Sequence[Organization]:
        page = await OrganizationService(session=session).overview(search=search, limit=1000)
        return page.items

    click.echo(f"{'slug':<24} {'status':<10} {'members':>7}  auth0 id")
    for org in run_in_transaction(work):
        click.echo(
            f"{org.slug:<24} {org.status:<10} {org.member_count:>7}"
            f"  {org.auth0_org_id or '(pending)'}"
        )


@orgs.command(name="add-domain")
@click.argument("slug")
@click.argument("domain")
def add_domain(slug: str, domain: str) -> None:
    async def work(session: AsyncSession, _: Settings) -> str:
        org = await _org(session, slug)
        record = await OrganizationService(session=session).add_domain(
            organization_id=org.id, domain=domain, actor=CLI_ACTOR
        )
        return f"{record_name(record.domain)} TXT {record.verification_token}"

    click.echo(f"add this DNS record, then run verify-domain: {run_in_transaction(work)}")


@orgs.command(name="verify-domain")
@click.argument("slug")
@click.argument("domain")
def verify_domain(slug: str, domain: str) -> None:
    async def work(session: AsyncSession, settings: Settings) -> str:
        org = await _org(session, slug)
        record = await OrganizationService(session=session).verify_domain(
            organization_id=org.id,
            domain=domain,
            actor=CLI_ACTOR,
            nameserver=settings.dns_nameserver,
        )
        return record.domain

    click.echo(f"verified {run_in_transaction(work)}: it now routes sign-ins to {slug}")


@orgs.command(name="add-connection")
@click.argument("slug")
@click.option("--name", required=True, help="The Auth0 connection name.")
@click.option(
    "--strategy",
    required=True,
    type=click.Choice([strategy.value for strategy in ConnectionStrategy]),
)
@click.option("--display-name", default=None)
@click.option("--auth0-id", default=None, help="The Auth0 connection id (con_...), if it exists.")
def add_connection(
    slug: str, name: str, strategy: str, display_name: str | None, auth0_id: str | None
) -> None:
    async def work(session: AsyncSession, _: Settings) -> None:
        org = await _org(session, slug)
        await OrganizationService(session=session).add_connection(
            organization_id=org.id,
            name=name,
            strategy=strategy,
            display_name=display_name or name,
            auth0_connection_id=auth0_id,
            actor=CLI_ACTOR,
        )

    run_in_transaction(work)
    click.echo(f"attached connection {name} to {slug}")


@orgs.command(name="invite-owner")
@click.argument("slug")
@click.argument("email")
def invite_owner(slug: str, email: str) -> None:
    async def work(session: AsyncSession, settings: Settings) -> str:
        org = await _org(session, slug)
        invitation, _ = await InvitationService(session=session).invite(
            organization_id=org.id,
            email=email,
            role=Role.OWNER,
            actor=CLI_ACTOR,
            authority=None,
            ttl=datetime.timedelta(days=settings.invitation_ttl_days),
        )
        return invitation.email

    click.echo(f"invited {run_in_transaction(work)} as owner of {slug}; Auth0 emails the link")


@orgs.command(name="suspend")
@click.argument("slug")
@click.option("--reactivate", is_flag=True, help="Lift a suspension instead.")
def suspend(slug: str, reactivate: bool) -> None:
    status = OrganizationStatus.ACTIVE if reactivate else OrganizationStatus.SUSPENDED

    async def work(session: AsyncSession, _: Settings) -> None:
        org = await _org(session, slug)
        await OrganizationService(session=session).set_status(
            organization_id=org.id, status=status, actor=CLI_ACTOR
        )

    run_in_transaction(work)
    click.echo(f"{slug} is now {status.value}")


@click.group(name="operators", help="Platform operators.")
def operators() -> None:
    pass


@operators.command(name="add")
@click.argument("email")
@click.option(
    "--sub", default=None, help="The Auth0 user id, when several accounts share the email."
)
def add_operator(email: str, sub: str | None) -> None:
    async def work(session: AsyncSession, _: Settings) -> str:
        users = UserRepository(session=session)
        matches = await users.get_many(email=email.strip().lower())
        if not matches:
            raise DomainError(
                f"No user {email} has signed in yet. Ask them to sign in once, or add the "
                "address to PLATFORM_OPERATOR_EMAILS."
            )
        if sub:
            matches = [user for user in matches if user.sub == sub]
        if len(matches) != 1:
            subs = ", ".join(
                sorted(user.sub for user in await users.get_many(email=email.strip().lower()))
            )
            raise DomainError(
                f"Several accounts use {email} ({subs}); say which one with --sub."
                if not sub
                else f"No account {sub} uses {email}."
            )
        user = matches[0]
        user.is_platform_operator = True
        await users.update(user, auto_commit=False)
        return user.sub

    granted = run_in_transaction(work)
    click.echo(f"{email} ({granted}) is now a platform operator")
