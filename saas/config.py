"""Application settings: one typed place, read from the environment and `.env`.

Development defaults let `make run` work with no configuration at all. Every default that is a
secret starts with ``dev-insecure-`` so that production start-up can refuse it by name.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_SECRET_PREFIX = "dev-insecure-"  # noqa: S105  (a marker, not a secret)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"

AppEnv = Literal["development", "test", "production"]


class ConfigurationError(Exception):
    """Raised with one human-readable line naming the bad variable."""


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _default_sqlite_url(name: str) -> str:
    return f"sqlite+aiosqlite:///{VAR_DIR / name}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    app_env: AppEnv = "development"
    secret_key: SecretStr = SecretStr(DEV_SECRET_PREFIX + "secret-key-change-me-in-production")
    database_url: str = Field(default_factory=lambda: _default_sqlite_url("app.db"))
    redis_url: str | None = None
    app_base_url: str = "http://127.0.0.1:8000"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Auth0. With no AUTH0_DOMAIN the embedded development IdP stands in for Auth0.
    auth0_domain: str | None = None
    # The tenant's canonical domain (tenant.eu.auth0.com), when AUTH0_DOMAIN is a custom
    # domain: Auth0 serves the Management API, and names its audience, on the canonical
    # domain only. Defaults to AUTH0_DOMAIN.
    auth0_management_domain: str | None = None
    auth0_client_id: str = "dev-app-client"
    auth0_client_secret: SecretStr = SecretStr(DEV_SECRET_PREFIX + "app-client-secret")
    auth0_audience: str = "https://api.saas-starter.example"
    auth0_management_client_id: str = "dev-management-client"
    auth0_management_client_secret: SecretStr = SecretStr(
        DEV_SECRET_PREFIX + "management-client-secret"
    )

    # Operator status from configuration is granted only to a *verified* email that signed in
    # through one of these connections (Auth0 user-id prefixes): the platform's own database by
    # default, never a tenant's enterprise IdP, which can assert any address it likes.
    platform_operator_emails: Annotated[list[str], NoDecode] = Field(default_factory=list)
    platform_operator_connections: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["auth0"]
    )
    # The ID token claim naming the connection a person signed in through. Auth0 puts no
    # connection claim in its tokens and its user ids do not reliably name one, so the tenant's
    # post-login Action adds `event.connection.name` under this (namespaced) name: see the
    # README, "Auth0 tenant: sign-in and sign-out". Require-SSO organizations depend on it.
    auth0_connection_claim: str = "https://saas-starter.example/connection"
    # The access token claim listing the sign-in's authentication methods (`"mfa"` among them
    # after a second factor). Auth0's access tokens carry no `amr`, so the tenant's post-login
    # Action adds the names of `event.authentication.methods` under this (namespaced) name:
    # see the README, "Auth0 tenant: sign-in and sign-out". The JSON API of an organization
    # that requires MFA refuses a token without "mfa" in it.
    auth0_amr_claim: str = "https://saas-starter.example/amr"
    # Ending a session on "Your sessions" also revokes its Auth0 session (the ID token's `sid`)
    # through the outbox: POST /api/v2/sessions/{id}/revoke, scope `delete:sessions`, a
    # Management API endpoint of Auth0's Enterprise plan. Off where the tenant lacks it: the
    # other browser may then sign in again without a password until its Auth0 session ends.
    auth0_revoke_sessions: bool = True

    # Sessions and invitations.
    session_idle_timeout_seconds: int = Field(default=30 * 60, ge=60)
    session_absolute_timeout_seconds: int = Field(default=12 * 3600, ge=300)
    invitation_ttl_days: int = Field(default=7, ge=1, le=30)
    # Per client address, on /login and /callback.
    login_rate_limit_per_minute: int = Field(default=30, ge=1)
    # Requests one SCIM token may make per minute (saas/scim/controllers.py). A first push of
    # 10,000 people at this rate takes under 10 minutes; IdPs back off on 429 and retry.
    scim_rate_limit_per_minute: int = Field(default=1200, ge=1)
    # DNS server for domain verification ("host:port"); the system resolver when unset.
    dns_nameserver: str | None = None
    # The outbox that keeps Auth0 in step (drained in-process unless disabled).
    outbox_worker_enabled: bool = True
    outbox_max_attempts: int = Field(default=8, ge=1, le=50)
    outbox_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # How long a worker holds a job it claimed. A job that has not finished by 80% of it is
    # cut short and retried, so a lease never runs out under a live worker; one left by a
    # worker that stopped expires, and the job runs again.
    outbox_lease_seconds: float = Field(default=300.0, ge=1, le=3600)
    auth0_request_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Where file-backed stores (sessions, rate limits) live when REDIS_URL is not set, and how
    # often their expired entries are deleted (files are otherwise only deleted when read).
    state_dir: Path = VAR_DIR
    store_sweep_interval_seconds: float = Field(default=300.0, gt=0, le=86400)
    # Production needs REDIS_URL: files are private to one process. A deployment that runs
    # exactly one app process may say so here and keep the file stores (logged as a warning).
    allow_file_stores_in_production: bool = False

    # The embedded development IdP (never used when APP_ENV=production).
    devidp_base_url: str = "http://127.0.0.1:8001"
    devidp_database_url: str = Field(default_factory=lambda: _default_sqlite_url("devidp.db"))
    devidp_key_path: Path = VAR_DIR / "devidp-signing-keys.json"

    @field_validator("platform_operator_emails", "platform_operator_connections", mode="before")
    @classmethod
    def _split_emails(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("app_base_url", "devidp_base_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            msg = "must be an absolute http(s) URL such as https://app.example.com"
            raise ValueError(msg)
        return value.rstrip("/")

    @field_validator("auth0_connection_claim", "auth0_amr_claim")
    @classmethod
    def _namespaced_claim(cls, value: str) -> str:
        # Auth0 recommends a namespaced (URL) custom claim name: it cannot collide with an OIDC
        # or Auth0 claim, which Auth0 would silently drop from the token.
        # https://auth0.com/docs/secure/tokens/json-web-tokens/create-custom-claims
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            msg = "must be a namespaced claim name like https://your-app.example/connection"
            raise ValueError(msg)
        return value

    @field_validator("auth0_domain", "auth0_management_domain")
    @classmethod
    def _normalize_auth0_domain(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if "://" not in value:
            value = f"https://{value}"
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            msg = "must be a host name like tenant.eu.auth0.com or an https:// URL"
            raise ValueError(msg)
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            msg = "an http:// Auth0 domain is allowed only on loopback; use https://"
            raise ValueError(msg)
        if parts.path or parts.query:
            msg = "must be a bare origin without a path"
            raise ValueError(msg)
        return value

    @field_validator("database_url", "devidp_database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        # Accept the usual sync-style URLs and pick the async driver the app uses.
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            value = "postgresql+asyncpg://" + value.removeprefix("postgresql://")
        if value.startswith("sqlite:///"):
            value = "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            msg = "must be a postgresql:// or sqlite:/// URL"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _management_domain_needs_a_tenant(self) -> Settings:
        if self.auth0_management_domain is not None and self.auth0_domain is None:
            msg = (
                "AUTH0_MANAGEMENT_DOMAIN is the canonical domain of the tenant AUTH0_DOMAIN "
                "names; set AUTH0_DOMAIN too (without it the development IdP is used)"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        # A real (non-loopback) Auth0 tenant means real users: refuse the public development
        # secrets then too, even if APP_ENV was forgotten.
        real_auth0 = self.auth0_domain is not None and not is_loopback_host(
            urlsplit(self.auth0_domain).hostname
        )
        if self.app_env != "production" and not real_auth0:
            return self
        problems: list[str] = []
        for name in ("secret_key", "auth0_client_secret", "auth0_management_client_secret"):
            secret: SecretStr = getattr(self, name)
            if secret.get_secret_value().startswith(DEV_SECRET_PREFIX):
                problems.append(f"{name.upper()} is a development default")
        if len(self.secret_key.get_secret_value()) < 32:
            problems.append("SECRET_KEY must be at least 32 characters")
        if self.app_env == "production":
            if self.auth0_domain is None:
                problems.append(
                    "AUTH0_DOMAIN is required (the development IdP is not for production)"
                )
            if urlsplit(self.app_base_url).scheme != "https":
                problems.append("APP_BASE_URL must be https://")
            if self.redis_url is None and not self.allow_file_stores_in_production:
                problems.append(
                    "REDIS_URL is required: without it sessions and the sign-in rate limit are "
                    "files private to one app process, so a second process neither sees those "
                    "sessions nor shares the limit (set ALLOW_FILE_STORES_IN_PRODUCTION=true "
                    "only if exactly one app process runs)"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # ---- derived values -------------------------------------------------------------

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def is_development(self) -> bool:
        return self.app_env == "development"

    @property
    def secure_cookies(self) -> bool:
        """Secure and `__Host-` cookies whenever the app is served over https (always in
        production, which refuses an http APP_BASE_URL); plain cookies on a local http origin."""
        return self.app_base_url.startswith("https://")

    @property
    def uses_dev_idp(self) -> bool:
        return self.auth0_domain is None

    @cached_property
    def auth0_base_url(self) -> str:
        """The Auth0 origin, without a trailing slash."""
        return self.auth0_domain or self.devidp_base_url

    @cached_property
    def auth0_issuer(self) -> str:
        """Auth0's issuer is the origin with a trailing slash (exact match matters)."""
        return self.auth0_base_url + "/"

    @cached_property
    def auth0_management_base_url(self) -> str:
        """Where the Management API and its machine-to-machine tokens are served: the tenant's
        canonical domain, never a custom domain (see `auth0_management_domain`)."""
        return self.auth0_management_domain or self.auth0_base_url

    @property
    def auth0_management_audience(self) -> str:
        # The Management API's identifier is https://{canonical domain}/api/v2/ whichever
        # domain people sign in on (Auth0 docs, "Get Access Tokens": custom domains and the
        # Management API; https://auth0.com/docs/secure/tokens/access-tokens/get-access-tokens).
        return self.auth0_management_base_url + "/api/v2/"

    @property
    def callback_url(self) -> str:
        return self.app_base_url + "/callback"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{location.upper()}: {message}" if location else message


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation failures into one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigurationError(f"invalid configuration: {_describe(error)}") from None
