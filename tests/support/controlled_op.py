"""A small but real OpenID Provider whose misbehaviour the test controls.

Modelled on the OpenID Foundation's relying-party conformance tests: the OP serves discovery,
its JWKS (its own RSA keys), `/authorize` (which redirects straight back with a code and the
`state` it received) and `/oauth/token` (confidential client, PKCE S256, single-use codes). What
the ID token looks like is decided by the current `Scenario`: which claims to change or drop,
and how to sign it (`alg: none`, HS256 keyed with the RSA public key, a key that is not
published, a tampered payload, ...); so is what `/userinfo` answers for the access token issued
with it. Discovery names an `end_session_endpoint` unless the test sets it to None.

The OP runs under uvicorn in a background thread (see `tests.support.servers.serve`) while the
test changes its scenario from the main thread, so its mutable state sits behind a lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from litestar import Litestar, Request, Response, get, post
from litestar.response import Redirect

from tests.support.servers import free_port, serve

CLIENT_ID = "rp-negative-client"
CLIENT_SECRET = "rp-negative-client-secret"
# An identity that is not in the demo data: a refused login must not create it.
NEWCOMER_SUB = "auth0|rp-negative-newcomer-0001"
NEWCOMER_EMAIL = "newcomer@rp-negative.example"
DROP_STATE = object()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_json(value: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid=kid or f"kid-{secrets.token_hex(6)}", private_key=key)

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class Signing(StrEnum):
    """How the ID token is signed."""

    RS256 = "rs256"  # the OP's current, published key: a good signature
    NONE = "none"  # `alg: none`, empty signature
    HS256_PUBLIC_KEY = "hs256-public-key"  # HS256 keyed with the published RSA public key's PEM
    UNPUBLISHED_KEY = "unpublished-key"  # a real RS256 signature by a key not in the JWKS
    FOREIGN_KEY_PUBLISHED_KID = "foreign-key-published-kid"  # another key, the published kid
    TAMPERED = "tampered"  # good signature, then the payload is changed


@dataclass(frozen=True)
class Scenario:
    """What the OP does on the next authorization and token request."""

    sub: str = NEWCOMER_SUB
    email: str = NEWCOMER_EMAIL
    name: str = "Nia Newcomer"
    # Claims to set (after the defaults), then claims to remove.
    claims: Mapping[str, Any] = field(default_factory=dict)
    drop: frozenset[str] = frozenset()
    # Claims sent as JSON strings instead of numbers ("1999999999" rather than 1999999999).
    as_strings: frozenset[str] = frozenset()
    # Relative to the time the token is minted.
    iat_offset: int = 0
    exp_offset: int = 600
    signing: Signing = Signing.RS256
    kid: str | None = None  # header `kid` instead of the signing key's own
    omit_kid: bool = False
    # `/authorize` answers with this OAuth error (and description) instead of a code.
    authorize_error: tuple[str, str] | None = None
    # `/authorize` sends back this `state` instead of the one it received (DROP_STATE: none).
    state_override: object = None
    # `/authorize` hands out the most recently redeemed code again.
    reuse_redeemed_code: bool = False
    omit_id_token: bool = False
    # What `/userinfo` answers for the access token issued with the ID token: the identity's
    # `sub`, `email` and `email_verified`, then these claims set, then these removed; or this
    # error status instead.
    userinfo_claims: Mapping[str, Any] = field(default_factory=dict)
    userinfo_drop: frozenset[str] = frozenset()
    userinfo_status: int = 200


@dataclass(frozen=True)
class AuthorizationRequest:
    """What the relying party sent to `/authorize`."""

    params: Mapping[str, str]
    code: str | None = None
    redeemed: bool = False

    @property
    def nonce(self) -> str | None:
        return self.params.get("nonce")

    @property
    def state(self) -> str | None:
        return self.params.get("state")

    @property
    def organization(self) -> str | None:
        return self.params.get("organization")

    @property
    def code_challenge(self) -> str | None:
        return self.params.get("code_challenge")


@dataclass
class TokenRequest:
    form: Mapping[str, str]
    status_code: int
    error: str | None = None


class ControlledOP:
    def __init__(
        self, base_url: str, *, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self._lock = threading.RLock()
        self._initial_key = SigningKey.generate("op-key-1")
        self._foreign_key = SigningKey.generate("foreign-key")
        self.redirect_uris: set[str] = set()
        self.reset()

    # ---- what the test controls ---------------------------------------------------------

    @property
    def issuer(self) -> str:
        return self.base_url + "/"

    @property
    def jwks_uri(self) -> str:
        return self.base_url + "/.well-known/jwks.json"

    def reset(self) -> None:
        """Back to a well-behaved OP with one published key and no history. Registered
        redirect URIs stay registered."""
        with self._lock:
            self.scenario = Scenario()
            self.current_key = self._initial_key
            self.published: dict[str, SigningKey] = {self._initial_key.kid: self._initial_key}
            self.jwks_fetches = 0
            self.authorizations: list[AuthorizationRequest] = []
            self.token_requests: list[TokenRequest] = []
            self._codes: dict[str, AuthorizationRequest] = {}
            self._redeemed: list[str] = []
            # access token -> the userinfo answer it gets (fixed when the token is issued)
            self._userinfo: dict[str, tuple[int, dict[str, Any]]] = {}
            self.userinfo_requests: list[str | None] = []  # the bearer token each one sent
            self.issued_access_tokens: list[str] = []
            self.issued_id_tokens: list[str] = []
            self.end_session_endpoint: str | None = self.base_url + "/oidc/logout"

    def register_redirect_uri(self, uri: str) -> None:
        """Like registering a client's callback URL: `/authorize` redirects only there."""
        with self._lock:
            self.redirect_uris.add(uri)

    def use(self, scenario: Scenario | None = None, **changes: Any) -> Scenario:
        with self._lock:
            self.scenario = replace(scenario or Scenario(), **changes)
            return self.scenario

    def rotate_key(self) -> SigningKey:
        """Publish a new key and sign with it from now on (the old one stays published)."""
        key = SigningKey.generate()
        with self._lock:
            self.published[key.kid] = key
            self.current_key = key
        return key

    def unpublish(self, kid: str) -> None:
        with self._lock:
            self.published.pop(kid, None)

    @property
    def code_redemptions(self) -> list[TokenRequest]:
        """The token requests of the authorization code grant, in order."""
        with self._lock:
            return [
                request
                for request in self.token_requests
                if request.form.get("grant_type") == "authorization_code"
            ]

    @property
    def last_authorization(self) -> AuthorizationRequest:
        with self._lock:
            return self.authorizations[-1]

    # ---- tokens ---------------------------------------------------------------------------

    def id_token_claims(
        self, *, nonce: str | None, organization: str | None, now: int | None = None
    ) -> dict[str, Any]:
        scenario = self.scenario
        now = int(time.time()) if now is None else now
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "sub": scenario.sub,
            "email": scenario.email,
            "email_verified": True,
            "name": scenario.name,
            "iat": now + scenario.iat_offset,
            "exp": now + scenario.exp_offset,
            "auth_time": now,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if organization is not None:
            claims["org_id"] = organization  # as Auth0 does for an organization login
        claims.update(scenario.claims)
        for name in scenario.drop:
            claims.pop(name, None)
        for name in scenario.as_strings:
            claims[name] = str(claims[name])
        return claims

    def mint_id_token(self, *, nonce: str | None, organization: str | None = None) -> str:
        """The ID token the current scenario calls for."""
        with self._lock:
            scenario = self.scenario
            key = self.current_key
            claims = self.id_token_claims(nonce=nonce, organization=organization)
        signing = scenario.signing
        if signing is Signing.UNPUBLISHED_KEY:
            key = self._foreign_key
        header: dict[str, Any] = {"typ": "JWT", "kid": scenario.kid or key.kid}
        if signing is Signing.FOREIGN_KEY_PUBLISHED_KID:
            header["kid"] = scenario.kid or self.current_key.kid
            key = self._foreign_key
        if scenario.omit_kid:
            header.pop("kid")
        if signing is Signing.NONE:
            return f"{_b64url_json({**header, 'alg': 'none'})}.{_b64url_json(claims)}."
        if signing is Signing.HS256_PUBLIC_KEY:
            signing_input = f"{_b64url_json({**header, 'alg': 'HS256'})}.{_b64url_json(claims)}"
            mac = hmac.new(key.public_pem, signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{_b64url(mac)}"
        token = jwt.encode(claims, key.private_key, algorithm="RS256", headers=header)
        if signing is Signing.TAMPERED:
            encoded_header, _, signature = token.split(".")
            forged = {**claims, "sub": claims.get("sub", "") + "-tampered"}
            return f"{encoded_header}.{_b64url_json(forged)}.{signature}"
        return token

    # ---- the HTTP endpoints ---------------------------------------------------------------

    def discovery_document(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.base_url + "/authorize",
            "token_endpoint": self.base_url + "/oauth/token",
            "jwks_uri": self.jwks_uri,
            "userinfo_endpoint": self.base_url + "/userinfo",
            **(
                {"end_session_endpoint": self.end_session_endpoint}
                if self.end_session_endpoint
                else {}
            ),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "scopes_supported": ["openid", "profile", "email"],
        }

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            self.jwks_fetches += 1
            return {"keys": [key.public_jwk for key in self.published.values()]}

    def authorize(self, params: Mapping[str, str]) -> Response[Any]:
        with self._lock:
            scenario = self.scenario
            redirect_uri = params.get("redirect_uri", "")
            problem = None
            if params.get("client_id") != self.client_id:
                problem = "unknown client_id"
            elif redirect_uri not in self.redirect_uris:
                problem = "redirect_uri is not registered"
            elif params.get("response_type") != "code":
                problem = "response_type must be code"
            elif params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
                problem = "PKCE with S256 is required"
            elif "openid" not in params.get("scope", "").split():
                problem = "scope must include openid"
            if problem is not None:
                # Never redirect to an unvetted redirect_uri: answer here.
                self.authorizations.append(AuthorizationRequest(params=dict(params)))
                return Response({"error": "invalid_request", "detail": problem}, status_code=400)
            answer: dict[str, str] = {}
            if scenario.authorize_error is not None:
                answer["error"], answer["error_description"] = scenario.authorize_error
                self.authorizations.append(AuthorizationRequest(params=dict(params)))
            else:
                if scenario.reuse_redeemed_code and self._redeemed:
                    code = self._redeemed[-1]
                else:
                    code = secrets.token_urlsafe(24)
                    self._codes[code] = AuthorizationRequest(params=dict(params), code=code)
                answer["code"] = code
                self.authorizations.append(AuthorizationRequest(params=dict(params), code=code))
            state = params.get("state")
            if scenario.state_override is DROP_STATE:
                state = None
            elif isinstance(scenario.state_override, str):
                state = scenario.state_override
            if state is not None:
                answer["state"] = state
        return Redirect(path=f"{redirect_uri}?{urlencode(answer)}", status_code=302)

    def token(self, form: Mapping[str, str]) -> Response[Any]:
        with self._lock:
            status, body = self._token_answer(form)
            self.token_requests.append(
                TokenRequest(form=dict(form), status_code=status, error=body.get("error"))
            )
        return Response(body, status_code=status, headers={"cache-control": "no-store"})

    def _token_answer(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("client_id") != self.client_id or not hmac.compare_digest(
            form.get("client_secret", "").encode(), self.client_secret.encode()
        ):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        code = form.get("code", "")
        authorization = self._codes.get(code)
        if authorization is None or authorization.redeemed:
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        # Single use, whatever happens next.
        self._codes[code] = replace(authorization, redeemed=True)
        self._redeemed.append(code)
        if form.get("redirect_uri") != authorization.params.get("redirect_uri"):
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
        verifier = form.get("code_verifier", "")
        challenge = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
        if not verifier or not hmac.compare_digest(challenge, authorization.code_challenge or ""):
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        body: dict[str, Any] = {
            "access_token": secrets.token_urlsafe(32),
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": authorization.params.get("scope", "openid"),
        }
        if not self.scenario.omit_id_token:
            body["id_token"] = self.mint_id_token(
                nonce=authorization.nonce, organization=authorization.organization
            )
            self.issued_id_tokens.append(body["id_token"])
        self.issued_access_tokens.append(body["access_token"])
        self._userinfo[body["access_token"]] = self._userinfo_answer()
        return 200, body

    def _userinfo_answer(self) -> tuple[int, dict[str, Any]]:
        scenario = self.scenario
        if scenario.userinfo_status != 200:
            return scenario.userinfo_status, {"error": "server_error"}
        claims: dict[str, Any] = {
            "sub": scenario.sub,
            "email": scenario.email,
            "email_verified": True,
            "name": scenario.name,
            **scenario.userinfo_claims,
        }
        for name in scenario.userinfo_drop:
            claims.pop(name, None)
        return 200, claims

    def userinfo(self, authorization: str | None) -> Response[Any]:
        bearer = authorization and authorization[:7].lower() == "bearer "
        token = authorization[7:] if authorization and bearer else None
        with self._lock:
            self.userinfo_requests.append(token)
            answer = self._userinfo.get(token or "")
        if answer is None:
            return Response({"error": "invalid_token"}, status_code=401)
        status, body = answer
        return Response(body, status_code=status, headers={"cache-control": "no-store"})

    def asgi_app(self) -> Litestar:
        op = self

        @get("/.well-known/openid-configuration", sync_to_thread=False)
        def discovery() -> dict[str, Any]:
            return op.discovery_document()

        @get("/.well-known/jwks.json", sync_to_thread=False)
        def jwks() -> dict[str, Any]:
            return op.jwks()

        @get("/authorize", sync_to_thread=False)
        def authorize(request: Request[Any, Any, Any]) -> Response[Any]:
            return op.authorize(dict(request.query_params))

        @post("/oauth/token")
        async def token(request: Request[Any, Any, Any]) -> Response[Any]:
            form = await request.form()
            return op.token({name: str(value) for name, value in form.items()})

        @get("/userinfo", sync_to_thread=False)
        def userinfo(request: Request[Any, Any, Any]) -> Response[Any]:
            return op.userinfo(request.headers.get("authorization"))

        return Litestar(route_handlers=[discovery, jwks, authorize, token, userinfo], debug=False)


@contextmanager
def running_op(**kwargs: Any) -> Iterator[ControlledOP]:
    port = free_port()
    op = ControlledOP(f"http://127.0.0.1:{port}", **kwargs)
    with serve(op.asgi_app(), port=port):
        yield op
