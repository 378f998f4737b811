"""Connection secrets at rest: Fernet with a key derived from SECRET_KEY (HKDF, own purpose
label), so a database dump alone does not reveal a customer's IdP client secret."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from saas.config import Settings

_PURPOSE = b"saas-starter/sso-connection-secrets/v1"


def _fernet(settings: Settings) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(
        settings.secret_key.get_secret_value().encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(settings: Settings, secret: str) -> str:
    return _fernet(settings).encrypt(secret.encode()).decode()


def decrypt_secret(settings: Settings, ciphertext: str) -> str:
    try:
        return _fernet(settings).decrypt(ciphertext.encode()).decode()
    except InvalidToken as error:
        msg = "the connection secret cannot be decrypted: was SECRET_KEY changed?"
        raise ValueError(msg) from error
