"""`saas orgs ...` and `saas operators add`, run as an operator would, against a real database
and a real local DNS server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from saas.config import load_settings
from saas.db.config import create_sqlalchemy_config
from saas.db.models import Invitation, Organization, OrganizationDomain, OutboxJob
from saas.organizations.cli import operators, orgs
from tests.support.commands import run_saas
from tests.support.dns_server import TxtZone, dns_server


@pytest.fixture
def dns() -> Iterator[tuple[str, TxtZone]]:
    with dns_server() as server:
        yield server


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def saas(database_url: str, nameserver: str, *args: str) -> Outcome:
    """Run a command in-process (a subprocess's Python start-up costs seconds here);
    `test_the_saas_entry_point_knows_the_commands` covers the real executable."""
    group = {"orgs": orgs, "operators": operators}[args[0]]
    env = {"DATABASE_URL": database_url, "APP_ENV": "test", "DNS_NAMESERVER": nameserver}
    result = CliRunner().invoke(group, list(args[1:]), env=env, catch_exceptions=False)
    return Outcome(result.exit_code, result.stdout, result.stderr)


def test_the_saas_entry_point_knows_the_commands() -> None:
    result = run_saas("orgs", "--help", env={**os.environ, "APP_ENV": "test"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for command in ("create", "list", "add-domain", "verify-domain", "add-connection"):
        assert command in result.stdout
    for command in ("invite-owner", "suspend"):
        assert command in result.stdout


async def count(database_url: str, model: type) -> int:
    config = create_sqlalchemy_config(load_settings(database_url=database_url))
    try:
        async with config.get_session() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        await config.get_engine().dispose()


async def fetch(database_url: str, statement: object) -> list[object]:
    config = create_sqlalchemy_config(load_settings(database_url=database_url))
    try:
        async with config.get_session() as session:
            return list((await session.execute(statement)).scalars())  # type: ignore[call-overload]
    finally:
        await config.get_engine().dispose()


def test_onboarding_from_the_command_line(database_url: str, dns: tuple[str, TxtZone]) -> None:
    nameserver, zone = dns
    created = saas(
        database_url,
        nameserver,
        "orgs",
        "create",
        "initrode",
        "--name",
        "Initrode",
        "--domain",
        "Initrode.example",
        "--jit",
        "--require-sso",
    )
    assert created.returncode == 0, created.stderr
    txt_line = next(line for line in created.stdout.splitlines() if "TXT" in line)
    record, _, token = txt_line.partition(": ")[2].partition(" TXT ")
    assert record == "_saas-verification.initrode.example"

    unverified = saas(
        database_url, nameserver, "orgs", "verify-domain", "initrode", "initrode.example"
    )
    assert unverified.returncode == 1
    assert "No TXT record _saas-verification.initrode.example" in unverified.stderr
    zone.set_txt(record, "some-other-value", token)
    verified = saas(
        database_url, nameserver, "orgs", "verify-domain", "initrode", "initrode.example"
    )
    assert verified.returncode == 0, verified.stderr
    assert zone.queries >= 2

    attached = saas(
        database_url,
        nameserver,
        "orgs",
        "add-connection",
        "initrode",
        "--name",
        "initrode-oidc",
        "--strategy",
        "oidc",
    )
    assert attached.returncode == 0, attached.stderr
    invited = saas(
        database_url, nameserver, "orgs", "invite-owner", "initrode", "boss@initrode.example"
    )
    assert invited.returncode == 0, invited.stderr
    listed = saas(database_url, nameserver, "orgs", "list")
    assert "initrode" in listed.stdout
    suspended = saas(database_url, nameserver, "orgs", "suspend", "initrode")
    assert suspended.returncode == 0
    assert "suspended" in suspended.stdout

    org = asyncio.run(
        fetch(database_url, select(Organization).where(Organization.slug == "initrode"))
    )[0]
    assert org.status == "suspended"  # type: ignore[attr-defined]
    assert org.jit_provisioning  # type: ignore[attr-defined]
    assert org.require_sso  # type: ignore[attr-defined]
    domain = asyncio.run(fetch(database_url, select(OrganizationDomain)))[0]
    assert domain.verified_at is not None  # type: ignore[attr-defined]
    invitation = asyncio.run(fetch(database_url, select(Invitation)))[0]
    assert invitation.role == "owner"  # type: ignore[attr-defined]
    # The organization, its connection and the invitation reach Auth0 through the outbox.
    kinds = sorted(j.kind for j in asyncio.run(fetch(database_url, select(OutboxJob))))  # type: ignore[attr-defined]
    assert kinds == ["invitation.sync", "organization.sync", "organization.sync"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("orgs", "create", "Bad Slug", "--name", "X"), "lowercase letters"),
        (
            ("orgs", "create", "gmailers", "--name", "X", "--domain", "gmail.com"),
            "public mailbox provider",
        ),
        (("orgs", "create", "okname", "--name", "X", "--domain", "not a domain"), "not a domain"),
        (("orgs", "add-domain", "nope", "nope.example"), "No such organization"),
        (("orgs", "invite-owner", "nope", "a@b.example"), "No such organization"),
        (("operators", "add", "nobody@nowhere.example"), "has signed in yet"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    database_url: str, dns: tuple[str, TxtZone], args: tuple[str, ...], message: str
) -> None:
    result = saas(database_url, dns[0], *args)
    assert result.returncode == 1, result.stdout
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert asyncio.run(count(database_url, Organization)) == 0
    assert asyncio.run(count(database_url, OutboxJob)) == 0
