"""``POST /oauth/token``: authorization_code (+PKCE), refresh_token (rotation), client_credentials.

Errors are Auth0's JSON ``{"error", "error_description"}`` with ``Cache-Control: no-store``.
Status codes follow Auth0, which answers 403 for ``invalid_grant`` / ``access_denied`` /
``unauthorized_client`` and 401 for client authentication failures.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import unquote

from litestar import Request, Response, post
from litestar.datastructures import State
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from saas.devidp import store, tokens
from saas.devidp.context import (
    ACCESS_TOKEN_TTL_SECONDS,
    REFRESH_TOKEN_TTL_SECONDS,
    Db,
    DevIdp,
    get_idp,
)
from saas.devidp.errors import NO_STORE, OAuthError
from saas.devidp.ids import constant_time_equals, opaque_token, sha256_hex
from saas.devidp.models import (
    AccessTokenRecord,
    AuthorizationCode,
    Client,
    ClientGrant,
    MfaCode,
    Organization,
    RefreshToken,
    TokenFamily,
    User,
)

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


async def _read_body(request: Request[Any, Any, Any]) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        form = await request.form()
        data: dict[str, str] = {}
        for key in form:
            values = form.getall(key)
            if len(values) > 1:
                raise OAuthError("invalid_request", f"Parameter {key} must not be repeated")
            data[key] = str(values[0])
        return data
    if content_type == "application/json":
        try:
            raw = await request.json()
        except Exception:
            raise OAuthError("invalid_request", "Malformed JSON body") from None
        if not isinstance(raw, dict):
            raise OAuthError("invalid_request", "The body must be a JSON object")
        return {k: str(v) for k, v in raw.items() if v is not None}
    raise OAuthError(
        "invalid_request",
        "Content-Type must be application/x-www-form-urlencoded or application/json",
    )


async def _authenticate(
    request: Request[Any, Any, Any], db: AsyncSession, body: dict[str, str]
) -> Client:
    header = request.headers.get("authorization")
    if header and header.lower().startswith("basic "):
        if "client_secret" in body:
            raise OAuthError("invalid_request", "Use only one client authentication method")
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            raw_id, raw_secret = decoded.split(":", 1)
        except (ValueError, UnicodeDecodeError):
            raise OAuthError(
                "invalid_client", "Malformed Basic authorization header", 401
            ) from None
        client_id, secret = unquote(raw_id), unquote(raw_secret)
        if body.get("client_id") not in (None, client_id):
            raise OAuthError("invalid_request", "client_id does not match the Basic credentials")
    else:
        client_id, secret = body.get("client_id", ""), body.get("client_secret", "")
        if not client_id:
            raise OAuthError("invalid_request", "Missing required parameter: client_id")
    client = await store.get_client(db, client_id)
    # Same answer for an unknown client and a wrong secret: no client enumeration.
    if client is None or not secret or not constant_time_equals(secret, client.client_secret):
        raise OAuthError("invalid_client", "Client authentication failed", 401)
    return client


@post("/oauth/token", opt={"exclude_from_csrf": True}, status_code=200)
async def token(request: Request[Any, Any, Any], db: Db, state: State) -> Response[Any]:
    idp = get_idp(state)
    now = idp.clock()
    body = await _read_body(request)
    grant_type = body.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "Missing required parameter: grant_type")
    if grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
        raise OAuthError("unsupported_grant_type", f"Unsupported grant type: {grant_type}")
    client = await _authenticate(request, db, body)
    if grant_type not in client.grant_types:
        raise OAuthError(
            "unauthorized_client", f"Grant type '{grant_type}' not allowed for the client.", 403
        )
    if grant_type == "authorization_code":
        payload = await _authorization_code(idp, db, client, body, now)
    elif grant_type == "refresh_token":
        payload = await _refresh_token(idp, db, client, body, now)
    else:
        payload = await _client_credentials(idp, db, client, body, now)
    return Response(payload, status_code=200, headers=NO_STORE)


def _invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description, 403)


async def revoke_family(db: AsyncSession, family_id: str) -> None:
    await db.execute(update(TokenFamily).where(TokenFamily.id == family_id).values(revoked=True))


async def _authorization_code(
    idp: DevIdp, db: AsyncSession, client: Client, body: dict[str, str], now: float
) -> dict[str, Any]:
    code = body.get("code")
    if not code:
        raise OAuthError("invalid_request", "Missing required parameter: code")
    record = await db.get(AuthorizationCode, sha256_hex(code))
    if record is None or record.client_id != client.client_id:
        raise _invalid_grant("Invalid authorization code")
    if record.used_at is not None:
        # A replayed code means it leaked: revoke everything that was issued from it.
        await revoke_family(db, record.family_id)
        await db.commit()
        raise _invalid_grant("Invalid authorization code")
    record.used_at = now  # single use, whatever the outcome of the checks below
    await db.commit()
    if record.expires_at <= now:
        raise _invalid_grant("Invalid authorization code")
    if body.get("redirect_uri") != record.redirect_uri:
        raise _invalid_grant("redirect_uri does not match the one sent to /authorize")
    verifier = body.get("code_verifier")
    if record.code_challenge is not None:
        if not verifier or not _VERIFIER.match(verifier):
            raise _invalid_grant("Failed to verify code verifier")
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if not constant_time_equals(computed, record.code_challenge):
            raise _invalid_grant("Failed to verify code verifier")
    elif verifier is not None:
        # PKCE downgrade protection: a verifier for a request that sent no challenge.
        raise _invalid_grant("code_verifier was sent but the authorization had no code_challenge")
    user = await db.get(User, record.user_id)
    if user is None:
        raise _invalid_grant("The user no longer exists")
    org = await db.get(Organization, record.organization_id) if record.organization_id else None
    if record.organization_id and org is None:
        raise _invalid_grant("The organization no longer exists")
    payload = await _issue_user_tokens(
        idp,
        db,
        client=client,
        user=user,
        scope=record.scope,
        audience=record.audience,
        org=org,
        nonce=record.nonce,
        auth_time=record.auth_time,
        sid=record.session_id,
        family_id=record.family_id,
        now=now,
        mfa=await db.get(MfaCode, record.code_hash) is not None,
    )
    await db.commit()
    return payload


async def _issue_user_tokens(
    idp: DevIdp,
    db: AsyncSession,
    *,
    client: Client,
    user: User,
    scope: str,
    audience: str | None,
    org: Organization | None,
    nonce: str | None,
    auth_time: float,
    sid: str,
    family_id: str,
    now: float,
    mfa: bool = False,
) -> dict[str, Any]:
    scopes = set(scope.split())
    if audience:
        permissions = await store.permissions(db, org.id if org else None, user.user_id, audience)
        access_token = tokens.user_access_token(
            idp,
            user=user,
            client_id=client.client_id,
            audience=audience,
            scope=scope,
            permissions=permissions,
            org=org,
            now=now,
            mfa=mfa,
        )
    else:
        # Without an audience Auth0 issues an opaque token that is only good for /userinfo.
        access_token = opaque_token()
    # merge, not add: Auth0's default access token profile has no `jti`
    # (https://auth0.com/docs/secure/tokens/access-tokens/access-token-profiles), so one person
    # signing in twice within a second with the same scopes gets the very same token. It
    # belongs to the latest sign-in then, instead of failing the second one with a 500.
    await db.merge(
        AccessTokenRecord(
            token_hash=sha256_hex(access_token),
            family_id=family_id,
            user_id=user.user_id,
            scope=scope,
            expires_at=now + ACCESS_TOKEN_TTL_SECONDS,
        )
    )
    payload: dict[str, Any] = {"access_token": access_token}
    if "openid" in scopes:
        payload["id_token"] = tokens.id_token(
            idp,
            user=user,
            client_id=client.client_id,
            scope=scopes,
            nonce=nonce,
            auth_time=auth_time,
            sid=sid,
            org=org,
            now=now,
            mfa=mfa,
        )
    if "offline_access" in scopes and "refresh_token" in client.grant_types:
        refresh = opaque_token(36)
        db.add(
            RefreshToken(
                token_hash=sha256_hex(refresh),
                family_id=family_id,
                client_id=client.client_id,
                user_id=user.user_id,
                session_id=sid,
                scope=scope,
                audience=audience,
                organization_id=org.id if org else None,
                auth_time=auth_time,
                created_at=now,
                rotated_at=None,
            )
        )
        payload["refresh_token"] = refresh
    payload.update(scope=scope, expires_in=ACCESS_TOKEN_TTL_SECONDS, token_type="Bearer")  # noqa: S106 - not a secret
    await db.flush()
    return payload


async def _refresh_token(
    idp: DevIdp, db: AsyncSession, client: Client, body: dict[str, str], now: float
) -> dict[str, Any]:
    presented = body.get("refresh_token")
    if not presented:
        raise OAuthError("invalid_request", "Missing required parameter: refresh_token")
    invalid = _invalid_grant("Unknown or invalid refresh token.")
    record = await db.get(RefreshToken, sha256_hex(presented))
    if record is None or record.client_id != client.client_id:
        raise invalid
    family = await db.get(TokenFamily, record.family_id)
    if family is None or family.revoked:
        raise invalid
    if record.rotated_at is not None:
        # Reuse of a rotated token: someone holds a stolen copy. Revoke the whole family.
        await revoke_family(db, record.family_id)
        await db.commit()
        raise invalid
    if record.created_at + REFRESH_TOKEN_TTL_SECONDS <= now:
        raise invalid
    scope = record.scope
    if body.get("scope"):
        requested = body["scope"].split()
        if not set(requested) <= set(record.scope.split()):
            raise OAuthError("invalid_scope", "The requested scope exceeds the original grant", 403)
        scope = " ".join(requested)
    user = await db.get(User, record.user_id)
    if user is None:
        raise invalid
    org = None
    if record.organization_id:
        org = await db.get(Organization, record.organization_id)
        if org is None or not await store.is_member(db, org.id, user.user_id):
            raise _invalid_grant("The user is no longer a member of the organization")
    record.rotated_at = now
    payload = await _issue_user_tokens(
        idp,
        db,
        client=client,
        user=user,
        scope=scope if "offline_access" in scope.split() else scope + " offline_access",
        audience=record.audience,
        org=org,
        nonce=None,
        auth_time=record.auth_time,
        sid=record.session_id,
        family_id=record.family_id,
        now=now,
    )
    payload["scope"] = scope
    await db.commit()
    return payload


async def _client_credentials(
    idp: DevIdp, db: AsyncSession, client: Client, body: dict[str, str], now: float
) -> dict[str, Any]:
    audience = body.get("audience")
    if not audience:
        raise OAuthError(
            "access_denied",
            "No audience parameter was provided, and no default audience has been configured",
            403,
        )
    grant = await db.scalar(
        select(ClientGrant).where(
            ClientGrant.client_id == client.client_id, ClientGrant.audience == audience
        )
    )
    if grant is None:
        raise OAuthError(
            "access_denied",
            f'Client is not authorized to access "{audience}". '
            'You need to create a "client-grant" associated to this API.',
            403,
        )
    requested = body.get("scope", "").split()
    missing = [s for s in requested if s not in grant.scope]
    if missing:
        raise OAuthError(
            "access_denied", f"Client has not been granted scopes: {' '.join(missing)}", 403
        )
    scope = " ".join(requested or grant.scope)
    access_token = tokens.client_credentials_token(
        idp, client_id=client.client_id, audience=audience, scope=scope, now=now
    )
    # So that the revoke_m2m_tokens fault (saas/devidp/faults.py) can revoke it.
    idp.faults.issued_m2m_token(access_token)
    return {
        "access_token": access_token,
        "scope": scope,
        "expires_in": ACCESS_TOKEN_TTL_SECONDS,
        "token_type": "Bearer",
    }
