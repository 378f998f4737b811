"""OpenID Provider metadata and the JWKS (public keys only)."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.datastructures import State

from saas.devidp.context import get_idp


@get("/.well-known/openid-configuration")
async def openid_configuration(state: State) -> Response[dict[str, Any]]:
    idp = get_idp(state)
    base = idp.base_url
    return Response(
        {
            "issuer": idp.issuer,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/oauth/token",
            "userinfo_endpoint": base + "/userinfo",
            "jwks_uri": base + "/.well-known/jwks.json",
            "end_session_endpoint": base + "/oidc/logout",
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "aud",
                "auth_time",
                "email",
                "email_verified",
                "exp",
                "iat",
                "iss",
                "name",
                "nickname",
                "nonce",
                "org_id",
                "org_name",
                "picture",
                "sid",
                "sub",
                "updated_at",
            ],
            "request_uri_parameter_supported": False,
            "request_parameter_supported": False,
        },
        headers={"Cache-Control": "public, max-age=60"},
    )


@get("/.well-known/jwks.json")
async def jwks(state: State) -> Response[dict[str, Any]]:
    # Short cache: after a rotation relying parties should see the new key quickly.
    return Response(get_idp(state).keys.jwks(), headers={"Cache-Control": "public, max-age=60"})
