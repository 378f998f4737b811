"""An invitation link opened before the app has recorded its ticket.

Auth0 emails the link while it creates the invitation; the outbox worker records the ticket a
moment later (saas/auth0/sync.py `push_invitation`). A link opened in between is early, not
invalid: it waits for the record while the worker holds the job. An unknown ticket gets the
same refusal whether or not anything was in flight."""

from __future__ import annotations

import datetime
import secrets
import threading
import time
from uuid import UUID

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from saas.auth0.jobs import INVITATION_TARGET
from saas.db.models import Organization, OutboxJob
from saas.invitations.services import InvitationService
from saas.login.controllers import TICKET_RECORD_WAIT_SECONDS
from tests.support.invitations import invite_as_system
from tests.support.stack import Stack, in_acme

ACME = "org_AcmeDemo00000001"

# No worker: the tests play its part, recording the ticket when they choose.
pytestmark = pytest.mark.stack(outbox_worker_enabled=False)


def invite(stack: Stack, email: str) -> UUID:
    async def work(session: AsyncSession, org: Organization) -> UUID:
        invitation, _ = await invite_as_system(session, org.id, email)
        return invitation.id

    return in_acme(stack.settings, work)


def lease_invitation_job(stack: Stack, invitation_id: UUID) -> None:
    """What a worker does as it starts the job: lease it (then it calls Auth0)."""

    async def work(session: AsyncSession, _: Organization) -> None:
        now = datetime.datetime.now(datetime.UTC)
        result = await session.execute(
            update(OutboxJob)
            .where(
                OutboxJob.target_type == INVITATION_TARGET,
                OutboxJob.target_id == invitation_id,
            )
            .values(lease_token="test", leased_until=now + datetime.timedelta(minutes=5))
        )
        assert result.rowcount == 1  # type: ignore[attr-defined]

    in_acme(stack.settings, work)


def record_ticket(stack: Stack, invitation_id: UUID, ticket: str) -> None:
    async def work(session: AsyncSession, _: Organization) -> None:
        await InvitationService(session=session).record_auth0_ticket(
            invitation_id=invitation_id,
            auth0_invitation_id="uinv_" + secrets.token_hex(8),
            ticket=ticket,
        )

    in_acme(stack.settings, work)


def link(stack: Stack, ticket: str) -> str:
    return f"{stack.app_url}/invitation?invitation={ticket}&organization={ACME}"


def test_a_link_opened_while_its_ticket_is_recorded_waits_for_it(stack: Stack) -> None:
    invitation_id = invite(stack, "early@acme.example")
    lease_invitation_job(stack, invitation_id)
    ticket = secrets.token_urlsafe(24)
    recorder = threading.Timer(0.8, record_ticket, args=(stack, invitation_id, ticket))
    started = time.monotonic()
    recorder.start()
    try:
        response = stack.browser().get(link(stack, ticket))
    finally:
        recorder.join()
    assert response.status_code == 303, response.text
    assert f"invitation={ticket}" in response.headers["location"]
    assert "login_hint=early%40acme.example" in response.headers["location"]
    assert time.monotonic() - started >= 0.8


def test_a_ticket_not_recorded_in_time_gets_the_usual_refusal(stack: Stack) -> None:
    lease_invitation_job(stack, invite(stack, "stuck@acme.example"))
    started = time.monotonic()
    response = stack.browser().get(link(stack, secrets.token_urlsafe(24)))
    waited = time.monotonic() - started
    assert response.status_code == 403, response.text
    assert "Invitation not valid" in response.text
    assert "If its email arrived a moment ago, wait a minute" in response.text
    assert TICKET_RECORD_WAIT_SECONDS <= waited < TICKET_RECORD_WAIT_SECONDS + 5


def test_an_unknown_ticket_is_refused_at_once_when_no_job_is_in_flight(stack: Stack) -> None:
    # Pending at the outbox but not leased (waiting for a retry, or for the worker): the
    # email has not gone out, so nothing is worth waiting for.
    invite(stack, "queued@acme.example")
    started = time.monotonic()
    response = stack.browser().get(link(stack, secrets.token_urlsafe(24)))
    assert response.status_code == 403, response.text
    assert "Invitation not valid" in response.text
    assert time.monotonic() - started < TICKET_RECORD_WAIT_SECONDS
