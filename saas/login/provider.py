"""The OpenID Provider (Auth0, or the development IdP) as the app sees it.

Authlib builds the authorization request (PKCE S256) and performs the code exchange with the
confidential client's credentials; PyJWT (saas.login.tokens) verifies what comes back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from saas.config import Settings
from saas.http import tls_context
from saas.login.errors import CodeExchangeFailed
from saas.login.jwks import JWKSCache

SCOPES = "openid profile email"
METADATA_TTL_SECONDS = 3600.0

logger = structlog.get_logger("saas.login.provider")


class ProviderUnavailable(Exception):
    """Discovery failed or the provider's metadata is not trustworthy."""


class UserinfoUnavailable(Exception):
    """The UserInfo endpoint gave no usable answer. The message names why, never the token."""


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None

    @classmethod
    def from_document(cls, document: dict[str, Any], expected_issuer: str) -> ProviderMetadata:
        if document.get("issuer") != expected_issuer:
            # OpenID Connect Discovery 1.0, section 4.3: the issuer must match exactly.
            raise ProviderUnavailable(
                f"discovery issuer {document.get('issuer')!r} is not {expected_issuer!r}"
            )
        try:
            return cls(
                issuer=document["issuer"],
                authorization_endpoint=document["authorization_endpoint"],
                token_endpoint=document["token_endpoint"],
                jwks_uri=document["jwks_uri"],
                userinfo_endpoint=_optional_url(document, "userinfo_endpoint"),
                end_session_endpoint=_optional_url(document, "end_session_endpoint"),
            )
        except KeyError as missing:
            raise ProviderUnavailable(f"discovery document lacks {missing}") from None


def _optional_url(document: dict[str, Any], name: str) -> str | None:
    value = document.get(name)
    return value if isinstance(value, str) and value.startswith(("https://", "http://")) else None


class OIDCProvider:
    """One per app: holds the HTTP client, the discovery metadata and the JWKS cache."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=5.0), verify=tls_context()
        )
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = 0.0
        self._jwks: JWKSCache | None = None

    def forget(self) -> None:
        """Drop the discovery document and the key set, as a restart does: the next sign-in
        fetches both again (the test suite's way to reuse one running app as a new one)."""
        self._metadata = None
        self._metadata_at = 0.0
        self._jwks = None

    @property
    def issuer(self) -> str:
        return self.settings.auth0_issuer

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL_SECONDS:
            url = f"{self.settings.auth0_base_url}/.well-known/openid-configuration"
            try:
                response = await self.http.get(url)
                response.raise_for_status()
                document = response.json()
            except (httpx.HTTPError, ValueError) as error:
                raise ProviderUnavailable(f"discovery failed: {type(error).__name__}") from error
            self._metadata = ProviderMetadata.from_document(document, self.issuer)
            self._metadata_at = time.monotonic()
        return self._metadata

    async def jwks(self) -> JWKSCache:
        metadata = await self.metadata()
        if self._jwks is None or self._jwks.jwks_uri != metadata.jwks_uri:
            self._jwks = JWKSCache(metadata.jwks_uri, self.http)
        return self._jwks

    def _client(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.settings.auth0_client_id,
            client_secret=self.settings.auth0_client_secret.get_secret_value(),
            scope=SCOPES,
            redirect_uri=self.settings.callback_url,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_post",  # noqa: S106  (a method name)
            timeout=10.0,
            verify=tls_context(),
        )

    async def authorization_url(
        self, *, state: str, nonce: str, code_verifier: str, extra: dict[str, str]
    ) -> str:
        """The authorization request (code flow with PKCE S256), built by Authlib's RFC 6749
        and RFC 7636 helpers: no HTTP client is made for what sends no request (building an
        `AsyncOAuth2Client` per sign-in was most of POST /login's time)."""
        metadata = await self.metadata()
        uri = prepare_grant_uri(
            metadata.authorization_endpoint,
            client_id=self.settings.auth0_client_id,
            response_type="code",
            redirect_uri=self.settings.callback_url,
            scope=SCOPES,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
            **extra,
        )
        return str(uri)

    async def exchange_code(self, *, code: str, code_verifier: str) -> dict[str, Any]:
        metadata = await self.metadata()
        async with self._client() as client:
            try:
                token = await client.fetch_token(
                    metadata.token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
            except (OAuthError, httpx.HTTPError, ValueError) as error:
                raise CodeExchangeFailed from error
        return dict(token)

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        """The UserInfo response (OpenID Connect Core 1.0 §5.3) as a JSON object.

        The caller must check its `sub` against the ID token's before using anything in it
        (§5.3.2). Only JSON is accepted: a signed or encrypted answer (application/jwt) was
        never asked for."""
        metadata = await self.metadata()
        if metadata.userinfo_endpoint is None:
            raise UserinfoUnavailable("the provider publishes no userinfo_endpoint")
        try:
            response = await self.http.get(
                metadata.userinfo_endpoint,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            )
            response.raise_for_status()
            if not response.headers.get("content-type", "").startswith("application/json"):
                raise UserinfoUnavailable("the userinfo answer is not JSON")
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise UserinfoUnavailable(type(error).__name__) from error
        if not isinstance(body, dict):
            raise UserinfoUnavailable("the userinfo answer is not a JSON object")
        return body

    async def logout_url(self, return_to: str, *, id_token_hint: str | None = None) -> str:
        """Where the browser goes to end its session at the provider, then back to `return_to`.

        The discovery document's `end_session_endpoint` when it names one: OpenID Connect
        RP-Initiated Logout 1.0 with `id_token_hint`, `post_logout_redirect_uri` and
        `client_id`, which Auth0 serves as `/oidc/logout` and checks against the application's
        Allowed Logout URLs (https://auth0.com/docs/api/authentication/logout/oidc-logout).
        A tenant that does not publish it (RP-Initiated Logout End Session Endpoint Discovery
        switched off, https://auth0.com/docs/authenticate/login/logout/log-users-out-of-auth0)
        still serves Auth0's own `/v2/logout`, which takes `client_id` and `returnTo`; so does
        any tenant while its discovery document cannot be read."""
        try:
            end_session = (await self.metadata()).end_session_endpoint
        except ProviderUnavailable as error:
            logger.warning("logout_without_discovery", reason=str(error))
            end_session = None
        client_id = self.settings.auth0_client_id
        if end_session is None:
            query = {"client_id": client_id, "returnTo": return_to}
            return str(httpx.URL(f"{self.settings.auth0_base_url}/v2/logout", params=query))
        params = {"client_id": client_id, "post_logout_redirect_uri": return_to}
        if id_token_hint:
            params["id_token_hint"] = id_token_hint
        return str(httpx.URL(end_session).copy_merge_params(params))

    async def aclose(self) -> None:
        await self.http.aclose()
