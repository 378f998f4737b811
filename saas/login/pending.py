"""The pre-login state: what the browser's session remembers between /authorize and /callback.

Keyed by `state`, so two tabs signing in at once do not clobber each other; bounded, and each
entry is single-use and short-lived.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from authlib.common.security import generate_token

from saas.login.sessions import PENDING_LOGIN

PENDING_TTL_SECONDS = 600
MAX_PENDING = 5


@dataclass(frozen=True, slots=True)
class PendingLogin:
    state: str
    nonce: str
    code_verifier: str
    next_url: str
    created_at: int
    organization_id: str | None = None  # our id of the organization the login is for
    auth0_org_id: str | None = None  # what the ID token's org_id must equal
    invitation: str | None = None  # the invitation ticket being accepted
    silent: bool = False  # prompt=none: fall back to interactive on login_required
    # An admin's test of this connection (saas/login/sso_test.py): nobody is signed in by it.
    sso_test: str | None = None
    # prompt=login: the provider was asked to authenticate afresh, not to reuse its session.
    reauthenticate: bool = False

    @classmethod
    def new(cls, **fields: Any) -> PendingLogin:
        return cls(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            # RFC 7636: 43-128 characters from the unreserved set.
            code_verifier=generate_token(64),
            created_at=int(time.time()),
            **fields,
        )

    def expired(self, now: float) -> bool:
        return now - self.created_at > PENDING_TTL_SECONDS


def remember(session: dict[str, Any], pending: PendingLogin) -> None:
    entries: dict[str, Any] = dict(session.get(PENDING_LOGIN) or {})
    entries[pending.state] = asdict(pending)
    session[PENDING_LOGIN] = _newest(entries.items())


def take(session: dict[str, Any], state: str | None) -> PendingLogin | None:
    """Remove and return the pending login for `state`; None if unknown or expired."""
    entries: dict[str, Any] = dict(session.get(PENDING_LOGIN) or {})
    raw = entries.pop(state, None) if state else None
    if entries:
        session[PENDING_LOGIN] = entries
    else:
        session.pop(PENDING_LOGIN, None)
    if not isinstance(raw, dict):
        return None
    try:
        pending = PendingLogin(**raw)
    except TypeError:
        return None
    if pending.expired(time.time()) or not secrets.compare_digest(pending.state, state or ""):
        return None
    return pending


def still_open(session: dict[str, Any], now: float) -> dict[str, Any]:
    """This browser's other sign-ins that may still complete: unexpired, the newest
    `MAX_PENDING`, to carry into the session a completed sign-in starts."""
    entries: dict[str, Any] = dict(session.get(PENDING_LOGIN) or {})
    return _newest(
        (state, raw)
        for state, raw in entries.items()
        if isinstance(raw, dict) and now - raw.get("created_at", 0) <= PENDING_TTL_SECONDS
    )


def _newest(entries: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The `MAX_PENDING` most recently started of these pending sign-ins, oldest first."""
    return dict(sorted(entries, key=lambda item: item[1].get("created_at", 0))[-MAX_PENDING:])
