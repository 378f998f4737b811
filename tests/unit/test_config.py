from __future__ import annotations

import os
from pathlib import Path

import pytest
import structlog
from litestar.stores.file import FileStore

from saas.config import ConfigurationError, load_settings
from saas.login.sessions import create_stores
from tests.support.commands import run_saas

STRONG = "x" * 40


def production(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "app_env": "production",
        "secret_key": STRONG,
        "auth0_domain": "tenant.eu.auth0.com",
        "auth0_client_secret": "real-client-secret",
        "auth0_management_client_secret": "real-m2m-secret",
        "app_base_url": "https://app.example.com",
        "redis_url": "redis://redis.internal:6379/0",
    }
    values.update(overrides)
    return values


def test_development_defaults_work_without_configuration() -> None:
    settings = load_settings()
    assert settings.uses_dev_idp
    assert settings.auth0_issuer == "http://127.0.0.1:8001/"
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


def test_valid_production_settings_are_accepted() -> None:
    settings = load_settings(**production())
    assert settings.auth0_issuer == "https://tenant.eu.auth0.com/"
    assert settings.auth0_management_audience == "https://tenant.eu.auth0.com/api/v2/"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"secret_key": "dev-insecure-secret-key-change-me-in-production"},
            "SECRET_KEY is a development default",
        ),
        ({"secret_key": "short"}, "SECRET_KEY must be at least 32 characters"),
        ({"auth0_client_secret": "dev-insecure-app-client-secret"}, "AUTH0_CLIENT_SECRET"),
        ({"auth0_management_client_secret": "dev-insecure-x"}, "AUTH0_MANAGEMENT_CLIENT_SECRET"),
        ({"auth0_domain": None}, "AUTH0_DOMAIN is required"),
        ({"app_base_url": "http://app.example.com"}, "APP_BASE_URL must be https://"),
        ({"redis_url": None}, "REDIS_URL is required: without it sessions and the sign-in"),
    ],
)
def test_production_refuses_development_values(override: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(**production(**override))


def test_a_custom_login_domain_keeps_the_management_api_on_the_canonical_domain() -> None:
    settings = load_settings(
        **production(
            auth0_domain="login.example.com", auth0_management_domain="tenant.eu.auth0.com"
        )
    )
    assert settings.auth0_issuer == "https://login.example.com/"
    assert settings.auth0_base_url == "https://login.example.com"
    assert settings.auth0_management_base_url == "https://tenant.eu.auth0.com"
    assert settings.auth0_management_audience == "https://tenant.eu.auth0.com/api/v2/"
    # Unset, the Management API is on AUTH0_DOMAIN, as before.
    plain = load_settings(**production())
    assert plain.auth0_management_base_url == "https://tenant.eu.auth0.com"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"auth0_management_domain": "http://tenant.auth0.com"},
            "AUTH0_MANAGEMENT_DOMAIN: an http:// Auth0 domain is allowed only on loopback",
        ),
        (
            {"auth0_management_domain": "https://tenant.auth0.com/api/v2/"},
            "AUTH0_MANAGEMENT_DOMAIN: must be a bare origin without a path",
        ),
        (
            {"auth0_management_domain": "ftp://tenant.auth0.com"},
            "AUTH0_MANAGEMENT_DOMAIN: must be a host name",
        ),
        (
            {"auth0_domain": None, "app_env": "test", "auth0_management_domain": "t.auth0.com"},
            "AUTH0_MANAGEMENT_DOMAIN is the canonical domain of the tenant AUTH0_DOMAIN names",
        ),
    ],
)
def test_the_management_domain_is_validated(override: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(**production(**override))


def test_http_auth0_domain_only_on_loopback() -> None:
    assert (
        load_settings(auth0_domain="http://127.0.0.1:9000").auth0_issuer == "http://127.0.0.1:9000/"
    )
    assert load_settings(auth0_domain="http://localhost:9000").uses_dev_idp is False
    with pytest.raises(ConfigurationError, match="AUTH0_DOMAIN: an http:// Auth0 domain"):
        load_settings(auth0_domain="http://tenant.auth0.com")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
    ],
)
def test_database_urls_get_the_async_driver(url: str, expected: str) -> None:
    assert load_settings(database_url=url).database_url == expected


def test_unsupported_database_is_named() -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        load_settings(database_url="mysql://root@localhost/app")


def test_operator_emails_are_split_and_lowercased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_OPERATOR_EMAILS", "Olivia@Ops.example, root@ops.example")
    assert load_settings().platform_operator_emails == ["olivia@ops.example", "root@ops.example"]


def test_bad_settings_fail_the_cli_with_one_clear_line() -> None:
    env = {**os.environ, "APP_ENV": "production", "SECRET_KEY": "short"}
    result = run_saas("--help", env=env, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: invalid configuration:")
    assert "Traceback" not in result.stderr


def test_a_real_auth0_tenant_refuses_development_secrets_without_app_env() -> None:
    with pytest.raises(ConfigurationError, match="SECRET_KEY is a development default"):
        load_settings(auth0_domain="tenant.eu.auth0.com")
    settings = load_settings(
        auth0_domain="tenant.eu.auth0.com",
        secret_key="k" * 40,
        auth0_client_secret="real",
        auth0_management_client_secret="real",
    )
    assert settings.app_env == "development"


def test_production_without_redis_says_why_it_is_refused() -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(**production(redis_url=None))
    message = str(refused.value)
    assert "REDIS_URL is required" in message
    assert "a second process neither sees those sessions nor shares the limit" in message
    assert "ALLOW_FILE_STORES_IN_PRODUCTION=true" in message


def test_file_stores_in_production_only_when_asked_for_and_with_a_warning(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        **production(redis_url=None, allow_file_stores_in_production=True, state_dir=tmp_path)
    )
    with structlog.testing.capture_logs() as logs:
        stores = create_stores(settings)
    assert all(isinstance(store, FileStore) for store in stores.values())
    warnings = [entry for entry in logs if entry["event"] == "file_stores_in_production"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert "this one process" in warnings[0]["reason"]


@pytest.mark.parametrize("claim", ["connection", "org_id", "urn:saas:connection", "https://"])
def test_the_connection_claim_must_be_namespaced(claim: str) -> None:
    """Auth0 drops a custom claim that collides with an OIDC or Auth0 one (`org_id` is
    Auth0's), without failing the sign-in; a URL name cannot collide."""
    with pytest.raises(ConfigurationError, match="AUTH0_CONNECTION_CLAIM: must be a namespaced"):
        load_settings(auth0_connection_claim=claim)


@pytest.mark.parametrize("claim", ["amr", "https://"])
def test_the_methods_claim_must_be_namespaced(claim: str) -> None:
    """`amr` is one of the claims Auth0 will not let an Action set."""
    with pytest.raises(ConfigurationError, match="AUTH0_AMR_CLAIM: must be a namespaced"):
        load_settings(auth0_amr_claim=claim)


def test_the_connection_claim_can_be_the_tenants_own_namespace() -> None:
    claim = "https://app.example.com/claims/connection"
    assert load_settings(auth0_connection_claim=claim).auth0_connection_claim == claim
