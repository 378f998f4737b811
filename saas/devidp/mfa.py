"""Multi-factor authentication at the dev IdP: TOTP enrollment and challenge, as Auth0's
one-time-password factor behind the post-login Action the README describes.

- The Action's rule, simulated: an authorization whose `acr_values` names the multi-factor
  policy (`MFA_POLICY`) is challenged in its own transaction, after the first factor (password
  or simulated enterprise IdP) and before the organization admits the user; a single sign-on
  session does not skip it (Auth0's `api.multifactor.enable(..., {allowRememberBrowser:
  false})`). A silent request (`prompt=none`) that would need it is answered
  `interaction_required`.
- Enrollment: a fresh secret per transaction, shown as a QR code (otpauth URI) and as text; it
  is kept only once a code from it is right. Tests read the secret off that page and compute
  codes with pyotp; no mailbox is involved.
- Codes: RFC 6238 (30 s, 6 digits), one step of drift either way, each time step good once; five
  wrong codes end the transaction with `access_denied`.
- The ID token of a code issued after the challenge carries `amr: ["mfa"]` and the policy as
  `acr`, as Auth0's do (https://community.auth0.com/t/include-claim-in-id-token-when-mfa-was-used/17112
  shows that payload; https://auth0.com/docs/secure/multi-factor-authentication/step-up-authentication/configure-step-up-authentication-for-web-apps
  says what the app must check). A code issued silently carries neither, as at Auth0.
"""

from __future__ import annotations

import hmac
from typing import Any

import pyotp
import segno
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.response import Redirect, Template
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from saas.devidp.authorize import finish
from saas.devidp.context import Db, DevIdp, get_idp
from saas.devidp.errors import HtmlError, add_query
from saas.devidp.mfa_policy import DONE, challenge_pending
from saas.devidp.models import IdpSession, LoginTransaction, MfaEnrollment, User
from saas.devidp.session import current_session

ISSUER_NAME = "SaaS Starter (dev IdP)"
STEP_SECONDS = 30
MAX_FAILURES = 5
_PENDING_SECRET = "mfa_pending_secret"  # noqa: S105  (a key name)
_FAILURES = "mfa_failures"


def accepted_step(secret: str, code: str, now: float, last_step: int) -> int | None:
    """The time step whose code `code` is, within one step of now and after `last_step`."""
    digits = code.replace(" ", "")
    if len(digits) != 6 or not digits.isdecimal():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now // STEP_SECONDS)
    for step in (current - 1, current, current + 1):
        if step > last_step and hmac.compare_digest(totp.at(step * STEP_SECONDS), digits):
            return step
    return None


async def _transaction(db: AsyncSession, txn_id: str | None, now: float) -> LoginTransaction:
    txn = await db.get(LoginTransaction, txn_id) if txn_id else None
    if txn is None or txn.expires_at <= now or txn.completed:
        raise HtmlError(
            400, "This sign-in has expired", "Go back to the application and sign in again."
        )
    if not challenge_pending(txn.params):
        raise HtmlError(400, "Nothing to confirm", "This sign-in needs no second step.")
    return txn


async def _signed_in_user(
    request: Request[Any, Any, Any], db: AsyncSession, txn: LoginTransaction, now: float
) -> tuple[IdpSession, User]:
    """The browser's IdP session must be the person who passed the first factor."""
    existing = await current_session(request, db, now)
    if existing is None or existing[1].user_id != txn.authenticated_user_id:
        raise HtmlError(400, "Not signed in", "Sign in again to confirm with your second factor.")
    return existing


def _qr(uri: str) -> Markup:
    svg = segno.make(uri, error="m").svg_inline(scale=4, title="Scan with your authenticator")
    return Markup(svg)  # noqa: S704  (segno's own SVG of a URI we built)


async def _page(
    db: AsyncSession, txn: LoginTransaction, user: User, *, error: str | None, status: int = 200
) -> Template:
    enrollment = await db.get(MfaEnrollment, user.user_id)
    context: dict[str, Any] = {"state": txn.id, "user": user, "error": error}
    if enrollment is None:
        secret = txn.params.get(_PENDING_SECRET)
        if not isinstance(secret, str):
            secret = pyotp.random_base32()
            txn.params = {**txn.params, _PENDING_SECRET: secret}
            await db.commit()
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER_NAME)
        context.update(enrolling=True, secret=secret, qr=_qr(uri), uri=uri)
    else:
        context.update(enrolling=False)
    return Template(template_name="mfa.html", context=context, status_code=status)


@get("/u/mfa")
async def mfa_page(db: Db, state: State, request: Request[Any, Any, Any]) -> Template:
    idp = get_idp(state)
    now = idp.clock()
    txn = await _transaction(db, request.query_params.get("state"), now)
    _, user = await _signed_in_user(request, db, txn, now)
    return await _page(db, txn, user, error=None)


@post("/u/mfa", status_code=200)
async def mfa_submit(db: Db, state: State, request: Request[Any, Any, Any]) -> Response[Any]:
    idp = get_idp(state)
    now = idp.clock()
    form = await request.form()
    txn = await _transaction(db, form.get("state"), now)
    session, user = await _signed_in_user(request, db, txn, now)
    code = str(form.get("code") or "")
    enrollment = await db.get(MfaEnrollment, user.user_id)
    secret = enrollment.secret if enrollment else txn.params.get(_PENDING_SECRET)
    if not isinstance(secret, str):
        return await _page(db, txn, user, error=None)  # the enrollment page was never shown
    step = accepted_step(secret, code, now, enrollment.last_step if enrollment else 0)
    if step is None:
        return await _refuse(idp, db, txn, user)
    if enrollment is None:
        db.add(MfaEnrollment(user_id=user.user_id, secret=secret, confirmed_at=now, last_step=step))
    else:
        enrollment.last_step = step
    params = {k: v for k, v in txn.params.items() if k not in {_PENDING_SECRET, _FAILURES}}
    txn.params = {**params, DONE: True}
    await db.flush()
    return await finish(idp, db, txn, user, session, now)


async def _refuse(
    idp: DevIdp, db: AsyncSession, txn: LoginTransaction, user: User
) -> Response[Any]:
    failures = int(txn.params.get(_FAILURES, 0)) + 1
    txn.params = {**txn.params, _FAILURES: failures}
    if failures >= MAX_FAILURES:
        txn.completed = True
        await db.commit()
        params = txn.params
        return Redirect(
            add_query(
                params["redirect_uri"],
                {
                    "error": "access_denied",
                    "error_description": "Too many failed multi-factor attempts",
                    "state": params["state"],
                },
            )
        )
    await db.commit()
    return await _page(
        db,
        txn,
        user,
        error="That code is not right. Enter the 6-digit code your app shows now.",
        status=400,
    )
