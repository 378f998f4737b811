"""Validate an enterprise connection before it is saved: a SAML IdP's metadata or sign-in URL
and signing certificate, or an OIDC provider's discovery document (fetched and checked)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from saas.config import is_loopback_host
from saas.errors import InvalidInput

MD = "{urn:oasis:names:tc:SAML:2.0:metadata}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"
MAX_METADATA_BYTES = 512 * 1024
MAX_DISCOVERY_BYTES = 64 * 1024


@dataclass(frozen=True)
class ValidatedConnection:
    strategy: str
    options: dict[str, Any]
    secret: str | None = None
    summary: dict[str, str] = field(default_factory=dict)


def check_url(value: str, field_name: str, *, allow_loopback_http: bool) -> str:
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and allow_loopback_http and is_loopback_host(parts.hostname):
        return url
    raise InvalidInput("Enter an https:// URL.", field=field_name)


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not ip.is_global or ip.is_multicast


async def refuse_internal_hosts(url: str, field_name: str, *, allow_loopback: bool) -> None:
    """Server-side fetches of tenant-supplied URLs must not reach the platform's own network:
    every address the name resolves to has to be public (loopback allowed only outside
    production, for local development and tests)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if allow_loopback and is_loopback_host(host):
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise InvalidInput("That host name does not resolve.", field=field_name) from error
    if any(_internal(str(info[4][0])) for info in infos):
        raise InvalidInput("Use a public address for the identity provider.", field=field_name)


async def fetch_json(http: httpx.AsyncClient, url: str, field_name: str) -> Any:
    """GET with a size cap: a hostile endpoint cannot make us buffer gigabytes."""
    try:
        async with http.stream("GET", url, timeout=5.0, follow_redirects=False) as response:
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > MAX_DISCOVERY_BYTES:
                    raise InvalidInput("The discovery document is too large.", field=field_name)
        return json.loads(body)
    except (httpx.HTTPError, ValueError) as error:
        raise InvalidInput(
            f"The discovery document could not be fetched ({type(error).__name__}).",
            field=field_name,
        ) from error


def _certificate(pem_or_b64: str, field_name: str) -> x509.Certificate:
    text = pem_or_b64.strip()
    try:
        if "BEGIN CERTIFICATE" in text:
            return x509.load_pem_x509_certificate(text.encode())
        return x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))
    except (ValueError, TypeError) as error:
        raise InvalidInput(
            "That is not an X.509 certificate (PEM or base64 DER).", field=field_name
        ) from error


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(Encoding.PEM).decode()


def _check_endpoints(root: Any, *, allow_loopback_http: bool) -> None:
    """Every endpoint the metadata names is where Auth0 will send people's browsers (or post
    their assertions): the same rule as a sign-in URL typed in by hand, for all of them, since
    Auth0 picks the binding it prefers, not necessarily the first one listed."""
    for element in root.iter():
        for attribute in ("Location", "ResponseLocation"):
            value = element.get(attribute)
            if value is None:
                continue
            try:
                check_url(value, "metadata_xml", allow_loopback_http=allow_loopback_http)
            except InvalidInput:
                name = element.tag.rpartition("}")[2]
                raise InvalidInput(
                    f"The metadata's {name} {attribute} must be an https:// URL.",
                    field="metadata_xml",
                ) from None


def validate_saml_metadata(xml: str, *, allow_loopback_http: bool) -> ValidatedConnection:
    if len(xml.encode()) > MAX_METADATA_BYTES:
        raise InvalidInput("The metadata is too large.", field="metadata_xml")
    try:
        root = ElementTree.fromstring(xml)
    except (ElementTree.ParseError, DefusedXmlException) as error:
        raise InvalidInput("The metadata is not well-formed XML.", field="metadata_xml") from error
    descriptor = (
        root if root.tag == f"{MD}EntityDescriptor" else root.find(f".//{MD}EntityDescriptor")
    )
    idp = descriptor.find(f"{MD}IDPSSODescriptor") if descriptor is not None else None
    if descriptor is None or idp is None:
        raise InvalidInput(
            "No SAML identity provider (IDPSSODescriptor) in the metadata.", field="metadata_xml"
        )
    sso = idp.find(f"{MD}SingleSignOnService")
    location = sso.get("Location", "") if sso is not None else ""
    cert_text = idp.findtext(f".//{DS}X509Certificate") or ""
    if not location or not cert_text.strip():
        raise InvalidInput(
            "The metadata needs a SingleSignOnService location and a signing certificate.",
            field="metadata_xml",
        )
    _check_endpoints(root, allow_loopback_http=allow_loopback_http)
    certificate = _certificate(cert_text, "metadata_xml")
    return ValidatedConnection(
        strategy="samlp",
        options={"metadataXml": xml, "signInEndpoint": location},
        summary={"entity_id": descriptor.get("entityID", ""), "sign_in_url": location,
                 "certificate": certificate.subject.rfc4514_string()},
    )  # fmt: skip


def validate_saml_endpoint(
    sign_in_url: str, certificate: str, *, allow_loopback_http: bool
) -> ValidatedConnection:
    url = check_url(sign_in_url, "sign_in_url", allow_loopback_http=allow_loopback_http)
    cert = _certificate(certificate, "signing_cert")
    return ValidatedConnection(
        strategy="samlp",
        options={"signInEndpoint": url, "signingCert": _pem(cert)},
        summary={"sign_in_url": url, "certificate": cert.subject.rfc4514_string()},
    )


async def validate_oidc(
    discovery_url: str,
    client_id: str,
    client_secret: str | None,
    http: httpx.AsyncClient,
    *,
    allow_loopback_http: bool,
) -> ValidatedConnection:
    url = check_url(discovery_url, "discovery_url", allow_loopback_http=allow_loopback_http)
    if not client_id.strip():
        raise InvalidInput(
            "Enter the client id registered at the identity provider.", field="client_id"
        )
    await refuse_internal_hosts(url, "discovery_url", allow_loopback=allow_loopback_http)
    document = await fetch_json(http, url, "discovery_url")
    if not isinstance(document, dict):
        raise InvalidInput("The discovery document is not a JSON object.", field="discovery_url")
    missing = [
        k
        for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
        if not document.get(k)
    ]
    if missing:
        raise InvalidInput(
            f"The discovery document lacks {', '.join(missing)}.", field="discovery_url"
        )
    expected_prefix = str(document["issuer"]).rstrip("/")
    if not url.startswith(expected_prefix):
        raise InvalidInput(
            "The discovery document's issuer does not match its URL.", field="discovery_url"
        )
    return ValidatedConnection(
        strategy="oidc",
        options={
            "discovery_url": url,
            "issuer": document["issuer"],
            "client_id": client_id.strip(),
            "type": "back_channel",
        },
        secret=client_secret or None,
        summary={"issuer": str(document["issuer"]), "client_id": client_id.strip()},
    )
