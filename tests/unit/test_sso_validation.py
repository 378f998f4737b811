"""Tenant-supplied IdP URLs are fetched server-side: internal addresses are refused."""

from __future__ import annotations

import pytest

from saas.errors import InvalidInput
from saas.sso.validation import check_url, refuse_internal_hosts, validate_saml_metadata
from tests.support.certificates import pem_body, self_signed_pem


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


def _metadata(*endpoints: str) -> str:
    body = pem_body(self_signed_pem(days=1))
    return (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x">'
        '<md:IDPSSODescriptor><md:KeyDescriptor><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/'
        f'xmldsig#"><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data>'
        f"</ds:KeyInfo></md:KeyDescriptor>{''.join(endpoints)}</md:IDPSSODescriptor>"
        "</md:EntityDescriptor>"
    )


def _sso(location: str) -> str:
    return f'<md:SingleSignOnService Binding="b" Location="{location}"/>'


@pytest.mark.parametrize(
    "endpoints",
    [
        (_sso("javascript:alert(1)"),),
        (_sso("http://169.254.169.254/latest/meta-data/"),),
        (_sso("data:text/html,x"),),
        (_sso("https://idp.example/sso"), _sso("javascript:alert(1)")),
        (
            _sso("https://idp.example/sso"),
            '<md:SingleLogoutService Binding="b" Location="https://idp.example/slo"'
            ' ResponseLocation="http://169.254.169.254/"/>',
        ),
    ],
)
def test_saml_metadata_endpoints_follow_the_sign_in_url_rule(endpoints: tuple[str, ...]) -> None:
    with pytest.raises(InvalidInput, match=r"must be an https:// URL"):
        validate_saml_metadata(_metadata(*endpoints), allow_loopback_http=False)


def test_saml_metadata_on_loopback_http_only_outside_production() -> None:
    xml = _metadata(_sso("http://127.0.0.1:8001/samlp/acme"))
    assert validate_saml_metadata(xml, allow_loopback_http=True).options["signInEndpoint"]
    with pytest.raises(InvalidInput):
        validate_saml_metadata(xml, allow_loopback_http=False)
    secure = _metadata(_sso("https://idp.example/sso"))
    summary = validate_saml_metadata(secure, allow_loopback_http=False).summary
    assert summary["sign_in_url"] == "https://idp.example/sso"
