"""Discovery, JWKS, key persistence and rotation, production refusal."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import httpx
import jwt
import pytest
from click.testing import CliRunner

from saas.config import load_settings
from saas.devidp.app import create_devidp_app
from saas.devidp.cli import devidp as devidp_cli
from saas.devidp.keys import KeyStore

from .conftest import DevIdpServer


def test_discovery_document(devidp: DevIdpServer) -> None:
    doc = httpx.get(devidp.base_url + "/.well-known/openid-configuration").json()
    assert doc["issuer"] == devidp.base_url + "/"  # Auth0's trailing slash
    assert doc["authorization_endpoint"] == devidp.base_url + "/authorize"
    assert doc["token_endpoint"] == devidp.base_url + "/oauth/token"
    assert doc["userinfo_endpoint"] == devidp.base_url + "/userinfo"
    assert doc["jwks_uri"] == devidp.base_url + "/.well-known/jwks.json"
    assert doc["end_session_endpoint"] == devidp.base_url + "/oidc/logout"
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert {"openid", "profile", "email", "offline_access"} <= set(doc["scopes_supported"])
    assert {"org_id", "org_name", "nonce", "sid"} <= set(doc["claims_supported"])
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(
        doc["grant_types_supported"]
    )


def test_jwks_publishes_public_parts_only(devidp: DevIdpServer) -> None:
    keys = httpx.get(devidp.base_url + "/.well-known/jwks.json").json()["keys"]
    assert keys
    for key in keys:
        assert key["kty"] == "RSA"
        assert key["use"] == "sig"
        assert key["alg"] == "RS256"
        assert key["kid"]
        assert key["n"]
        assert key["e"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_signing_key_file_is_private(devidp: DevIdpServer) -> None:
    mode = stat.S_IMODE(devidp.key_path.stat().st_mode)
    assert mode == 0o600


def test_refuses_production() -> None:
    settings = load_settings(
        app_env="production",
        secret_key="x" * 40,
        auth0_domain="tenant.eu.auth0.com",
        auth0_client_secret="prod-secret",
        auth0_management_client_secret="prod-secret-2",
        app_base_url="https://app.example.com",
        redis_url="redis://127.0.0.1:6379/0",
    )
    with pytest.raises(RuntimeError, match="production"):
        create_devidp_app(settings)


def test_key_store_survives_reload_and_drops_keys_after_grace(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = KeyStore(path, grace_seconds=3600)
    first.load()
    kid = first.active.kid
    again = KeyStore(path, grace_seconds=3600)
    again.load()
    assert again.active.kid == kid  # persisted: tokens survive restarts
    new = again.rotate()
    assert [k.kid for k in again.published()] == [new.kid, kid]
    short = KeyStore(path, grace_seconds=0)
    short.load()
    assert [k.kid for k in short.published()] == [new.kid]


def test_rotate_keys_cli_keeps_old_kid_published(devidp: DevIdpServer) -> None:
    jwks_url = devidp.base_url + "/.well-known/jwks.json"
    before = {k["kid"] for k in httpx.get(jwks_url).json()["keys"]}
    old_token = _m2m_token(devidp)
    result = CliRunner().invoke(
        devidp_cli,
        ["rotate-keys", "--grace-seconds", "3600"],
        env={
            "APP_ENV": "test",
            "DEVIDP_KEY_PATH": str(devidp.key_path),
            "DEVIDP_BASE_URL": devidp.base_url,
        },
    )
    assert result.exit_code == 0, result.output
    new_kid = result.output.split("active signing key: ")[1].split()[0]
    time.sleep(0.05)
    after = {k["kid"] for k in httpx.get(jwks_url).json()["keys"]}
    assert new_kid in after
    assert before <= after
    new_token = _m2m_token(devidp)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert jwt.get_unverified_header(old_token)["kid"] in after
    # Tokens signed by the old key are still accepted by the Management API.
    response = httpx.get(
        devidp.base_url + "/api/v2/roles", headers={"Authorization": f"Bearer {old_token}"}
    )
    assert response.status_code == 200


def _m2m_token(devidp: DevIdpServer) -> str:
    response = httpx.post(
        devidp.base_url + "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": devidp.settings.auth0_management_client_id,
            "client_secret": devidp.settings.auth0_management_client_secret.get_secret_value(),
            "audience": devidp.settings.auth0_management_audience,
        },
    )
    return str(response.json()["access_token"])


def test_landing_and_mailbox_pages(devidp: DevIdpServer) -> None:
    landing = httpx.get(devidp.base_url + "/")
    assert landing.status_code == 200
    for link in ("/__dev/mailbox", "/.well-known/openid-configuration", "/.well-known/jwks.json"):
        assert f'href="{link}"' in landing.text
    assert 'href="/static/devidp.css"' in landing.text
    assert "style=" not in landing.text
    css = httpx.get(devidp.base_url + "/static/devidp.css")
    assert css.status_code == 200
    assert "text/css" in css.headers["content-type"]
