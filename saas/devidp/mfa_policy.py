"""When the dev IdP asks for a second factor (saas.devidp.mfa has the pages), in one place for
the authorization request, the code and the token endpoint."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from saas.devidp.models import LoginTransaction

# Auth0's multi-factor policy (https://auth0.com/docs/multifactor-authentication/developer/step-up-with-acr).
MFA_POLICY = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
REQUIRED = "mfa_required"  # transaction params: the request's acr_values asked for it
DONE = "mfa_done"  # transaction params: the challenge was passed in this transaction


def asks_for_mfa(acr_values: str | None) -> bool:
    return MFA_POLICY in (acr_values or "").split()


def challenge_pending(params: dict[str, Any]) -> bool:
    return bool(params.get(REQUIRED)) and not params.get(DONE)


def mfa_location(txn: LoginTransaction) -> str:
    return f"/u/mfa?state={quote(txn.id)}"
