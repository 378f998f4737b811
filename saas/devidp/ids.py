"""Auth0-shaped identifiers and small secret helpers."""

from __future__ import annotations

import hashlib
import secrets
import string
from datetime import UTC, datetime

_ALPHABET = string.ascii_letters + string.digits


def random_id(prefix: str, length: int = 16) -> str:
    """An id like Auth0's: ``org_`` / ``con_`` / ``rol_`` / ``uinv_`` + random alphanumerics."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def opaque_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    """Secrets (codes, refresh tokens, session cookies) are stored only as hashes."""
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equals(left: str, right: str) -> bool:
    return secrets.compare_digest(left.encode(), right.encode())


def iso8601(epoch: float) -> str:
    """Auth0's timestamp format: ``2020-08-20T19:10:06.299Z``."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
