"""A self-signed X.509 certificate, as an IdP's SAML signing certificate in tests."""

from __future__ import annotations

import datetime
import functools

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@functools.cache
def _signing_key() -> rsa.RSAPrivateKey:
    # One key per test process: a 2048-bit key costs ~45 ms to make, and what the tests vary
    # is the certificate (its name, serial and validity), never the key behind it.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed_pem(common_name: str = "idp.example", *, days: int = 365) -> str:
    key = _signing_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def pem_body(pem: str) -> str:
    """The Base64 between the BEGIN and END lines, as SAML metadata carries it."""
    return "".join(line for line in pem.splitlines() if "CERTIFICATE" not in line)
