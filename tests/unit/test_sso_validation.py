"""Tenant-supplied IdP URLs are fetched server-side: internal addresses are refused."""

from __future__ import annotations

import pytest

from saas.errors import InvalidInput
from saas.sso.validation import check_url, refuse_internal_hosts


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/.well-known/openid-configuration",
        "https://localhost:8443/x",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.5/x",
        "https://[::1]/x",
        "https://192.168.1.1/x",
    ],
)
async def test_internal_addresses_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match="public address"):
        await refuse_internal_hosts(url, "discovery_url", allow_loopback=False)


async def test_loopback_is_allowed_only_when_asked() -> None:
    await refuse_internal_hosts("http://127.0.0.1:9/x", "d", allow_loopback=True)


@pytest.mark.parametrize(
    "url", ["ftp://idp.example/x", "http://idp.example/x", "https://", "idp.example"]
)
def test_only_https_urls(url: str) -> None:
    with pytest.raises(InvalidInput, match="https://"):
        check_url(url, "discovery_url", allow_loopback_http=False)
