"""Bearer authentication and per-endpoint scope checks for the Management API."""

from __future__ import annotations

from typing import Any

import jwt
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from saas.devidp import tokens
from saas.devidp.context import get_idp
from saas.devidp.errors import ManagementError


def management_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Every handler declares ``opt={"scopes": (...)}``; the token needs one of them."""
    idp = get_idp(connection.app.state)
    header = connection.headers.get("authorization", "")
    if not header.lower().startswith("bearer ") or not header[7:].strip():
        raise ManagementError(401, "Missing authentication", "missing_authentication")
    token = header[7:].strip()
    try:
        claims = tokens.verify(idp, token, audience=idp.management_audience)
    except jwt.ExpiredSignatureError:
        raise ManagementError(
            401, "Expired token received for JSON Web Token validation", "token_expired"
        ) from None
    except jwt.InvalidTokenError:
        raise ManagementError(401, "Invalid token", "invalid_token") from None
    if claims.get("gty") != "client-credentials" or idp.faults.is_revoked(token):
        raise ManagementError(401, "Invalid token", "invalid_token")
    required: tuple[str, ...] = handler.opt.get("scopes", ())
    granted = set(str(claims.get("scope", "")).split())
    if required and not granted.intersection(required):
        raise ManagementError(
            403, f"Insufficient scope, expected any of: {','.join(required)}", "insufficient_scope"
        )
    connection.state.management_claims = claims
