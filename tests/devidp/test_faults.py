"""Fault injection on the Management API: 429 with Retry-After, 500, hangs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from .conftest import DevIdpServer


@pytest.fixture
def faults(devidp: DevIdpServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=devidp.base_url + "/__dev/faults", timeout=10) as client:
        yield client
        client.delete("")


def test_rate_limit_for_next_calls(faults: httpx.Client, mgmt: httpx.Client) -> None:
    added = faults.post(
        "",
        json={
            "method": "GET",
            "path": "/api/v2/roles",
            "response": "429",
            "count": 2,
            "retry_after": 3,
        },
    )
    assert added.status_code == 201
    assert added.json()["remaining"] == 2
    for _ in range(2):
        limited = mgmt.get("/roles")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "3"
        assert limited.json()["statusCode"] == 429
        assert limited.json()["errorCode"] == "too_many_requests"
    assert mgmt.get("/roles").status_code == 200
    assert faults.get("").json()["faults"] == []


def test_server_error_by_glob_and_method(faults: httpx.Client, mgmt: httpx.Client) -> None:
    faults.post(
        "",
        json={
            "method": "POST",
            "path": "/api/v2/organizations/*/members",
            "response": "500",
            "count": 1,
        },
    )
    assert (
        mgmt.get("/organizations/org_AcmeDemo00000001/members").status_code == 200
    )  # GET untouched
    failed = mgmt.post(
        "/organizations/org_AcmeDemo00000001/members",
        json={"members": ["samlp|acme-saml|bob@acme.example"]},
    )
    assert failed.status_code == 500
    ok = mgmt.post(
        "/organizations/org_AcmeDemo00000001/members",
        json={"members": ["samlp|acme-saml|bob@acme.example"]},
    )
    assert ok.status_code == 204


def test_fraction_and_hang(faults: httpx.Client, mgmt: httpx.Client) -> None:
    faults.post("", json={"path": "/api/v2/roles", "response": "500", "fraction": 1.0})
    assert all(mgmt.get("/roles").status_code == 500 for _ in range(3))
    faults.delete("")
    faults.post(
        "", json={"path": "/api/v2/roles", "response": "hang", "hang_seconds": 0.6, "count": 1}
    )
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        mgmt.get("/roles", timeout=0.2)
    assert time.monotonic() - started < 0.6
    time.sleep(0.5)
    assert mgmt.get("/roles").status_code == 200


def test_bad_fault_specs(faults: httpx.Client) -> None:
    assert (
        faults.post("", json={"path": "/oauth/token", "response": "500", "count": 1}).status_code
        == 400
    )
    assert (
        faults.post("", json={"path": "/api/v2/roles", "response": "418", "count": 1}).status_code
        == 400
    )
    assert faults.post("", json={"path": "/api/v2/roles", "response": "500"}).status_code == 400
    assert (
        faults.post(
            "",
            content=b"path=/api/v2/x",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ).status_code
        == 415
    )
