"""Is the Auth0 session a sign-in came from one its person asked to end?

Ending a session on "Your sessions" queues the revocation of its Auth0 session (the ID token's
`sid`) through the outbox (saas/account/services.py). Until Auth0 has done it (the worker runs
after the commit, and Auth0 only says the request was accepted: 202), or if it failed, that
session could still sign its browser straight back in without a password. The callback asks
here first: an ID token whose `sid` has a revocation queued after the token's `auth_time`
came from a session its person ended, and the sign-in is started again with `prompt=login`
(saas/login/controllers.py), which makes the provider authenticate afresh.

Read from the outbox jobs of that person (a few rows, on the target index); no write, no call.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.auth0.jobs import AUTH0_SESSION_REVOKE, AUTH0_SESSION_TARGET
from saas.db.models import OutboxJob, User


async def ended_by_its_person(db: AsyncSession, claims: dict[str, Any], sid: str | None) -> bool:
    if not sid:
        return False
    user_id = await db.scalar(select(User.id).where(User.sub == claims["sub"]))
    if user_id is None:
        return False
    auth_time = claims.get("auth_time")
    since = datetime.datetime.fromtimestamp(
        auth_time if isinstance(auth_time, int | float) else 0, tz=datetime.UTC
    )
    payloads = await db.scalars(
        select(OutboxJob.payload).where(
            OutboxJob.organization_id.is_(None),
            OutboxJob.target_type == AUTH0_SESSION_TARGET,
            OutboxJob.target_id == user_id,
            OutboxJob.kind == AUTH0_SESSION_REVOKE,
            OutboxJob.created_at >= since,
        )
    )
    return any(isinstance(p, dict) and p.get("sid") == sid for p in payloads)
