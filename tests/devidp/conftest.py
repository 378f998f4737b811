"""A real dev IdP under uvicorn on a free loopback port, shared by the whole devidp test run."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from saas.config import Settings, load_settings
from saas.devidp.app import create_devidp_app
from saas.devidp.clients import ClientSpec

APP_BASE = "http://127.0.0.1:18000"
REQUIRE_ORG_CLIENT = ClientSpec(
    client_id="test-require-org-client",
    client_secret="test-require-org-secret",
    name="Test client that requires an organization",
    callbacks=(APP_BASE + "/test-callback",),
    allowed_logout_urls=(APP_BASE + "/",),
    organization_usage="require",
)


@dataclass(frozen=True)
class DevIdpServer:
    base_url: str
    settings: Settings
    db_path: Path
    key_path: Path

    @property
    def issuer(self) -> str:
        return self.base_url + "/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def devidp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevIdpServer]:
    tmp = tmp_path_factory.mktemp("devidp")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = load_settings(
        app_env="test",
        app_base_url=APP_BASE,
        devidp_base_url=base,
        devidp_database_url=f"sqlite+aiosqlite:///{tmp / 'devidp.db'}",
        devidp_key_path=tmp / "var" / "keys.json",
        auth0_domain=None,
    )
    app = create_devidp_app(settings, extra_clients=[REQUIRE_ORG_CLIENT], key_grace_seconds=3600)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dev IdP did not start")
        time.sleep(0.02)
    yield DevIdpServer(base, settings, tmp / "devidp.db", tmp / "var" / "keys.json")
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser(devidp: DevIdpServer) -> Iterator[httpx.Client]:
    """A fresh "browser": its own cookie jar, redirects followed by hand."""
    with httpx.Client(base_url=devidp.base_url, follow_redirects=False, timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def mgmt_token(devidp: DevIdpServer) -> str:
    response = httpx.post(
        devidp.base_url + "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": devidp.settings.auth0_management_client_id,
            "client_secret": devidp.settings.auth0_management_client_secret.get_secret_value(),
            "audience": devidp.settings.auth0_management_audience,
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def mgmt(devidp: DevIdpServer, mgmt_token: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=devidp.base_url + "/api/v2",
        headers={"Authorization": f"Bearer {mgmt_token}"},
        timeout=10,
    ) as client:
        yield client
