"""RS256 signing keys, persisted to a JSON file so tokens survive restarts.

The file holds the active key and recently retired ones. Retired keys stay in the JWKS for a
grace period (so relying parties can still verify tokens signed just before a rotation) and
are then dropped. The running server re-reads the file when it changes, so
``saas devidp rotate-keys`` takes effect without a restart.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from saas.devidp.ids import random_id

DEFAULT_GRACE_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    created_at: float
    retired_at: float | None = None

    @property
    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": _b64uint(numbers.n),
            "e": _b64uint(numbers.e),
        }


def _b64uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _new_key() -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(kid=random_id("", 22), private_key=private, created_at=time.time())


@functools.lru_cache(maxsize=64)
def _parse_private_key(pem: str) -> rsa.RSAPrivateKey:
    """The key in `pem`, parsed and validated once per process.

    The key file is read again at every start and after every rotation, and validating a
    2048-bit RSA key costs about 30 ms of CPU. The parsed key is immutable, so one object can
    serve every reader of the same PEM.
    """
    private = serialization.load_pem_private_key(pem.encode(), None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError("the dev IdP's key file holds a key that is not RSA")
    return private


class KeyStore:
    def __init__(self, path: Path, grace_seconds: int = DEFAULT_GRACE_SECONDS) -> None:
        self.path = path
        self.grace_seconds = grace_seconds
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = []
        self._mtime: float | None = None

    # ---- persistence ----------------------------------------------------------------

    def _read(self) -> list[SigningKey]:
        data = json.loads(self.path.read_text())
        keys = []
        for item in data["keys"]:
            keys.append(
                SigningKey(
                    kid=item["kid"],
                    private_key=_parse_private_key(item["private_pem"]),
                    created_at=item["created_at"],
                    retired_at=item.get("retired_at"),
                )
            )
        return keys

    def _write(self, keys: list[SigningKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {
            "keys": [
                {
                    "kid": key.kid,
                    "private_pem": key.private_pem.decode(),
                    "created_at": key.created_at,
                    "retired_at": key.retired_at,
                }
                for key in keys
            ]
        }
        # Write to a private temp file then rename: readers never see a half-written file and
        # the private keys are never world-readable, not even briefly.
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._mtime = self.path.stat().st_mtime_ns

    def _prune(self, keys: list[SigningKey]) -> list[SigningKey]:
        now = time.time()
        return [k for k in keys if k.retired_at is None or now - k.retired_at < self.grace_seconds]

    def load(self) -> None:
        """Load (creating on first use) and drop retired keys past their grace period."""
        with self._lock:
            if not self.path.exists():
                self._keys = [_new_key()]
                self._write(self._keys)
                return
            keys = self._read()
            pruned = self._prune(keys)
            if not any(k.retired_at is None for k in pruned):
                pruned.insert(0, _new_key())
            if pruned != keys:
                self._write(pruned)
            else:
                self._mtime = self.path.stat().st_mtime_ns
            self._keys = pruned

    def _refresh_if_changed(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != self._mtime or any(
            k.retired_at is not None and time.time() - k.retired_at >= self.grace_seconds
            for k in self._keys
        ):
            self.load()

    def rotate(self) -> SigningKey:
        """Make a new key active; the previous active key is retired (still published)."""
        self.load()
        with self._lock:
            now = time.time()
            retired = [
                SigningKey(k.kid, k.private_key, k.created_at, k.retired_at or now)
                for k in self._keys
            ]
            new = _new_key()
            self._keys = [new, *retired]
            self._write(self._keys)
            return new

    # ---- use ------------------------------------------------------------------------

    @property
    def active(self) -> SigningKey:
        self._refresh_if_changed()
        return next(k for k in self._keys if k.retired_at is None)

    def published(self) -> list[SigningKey]:
        self._refresh_if_changed()
        return list(self._keys)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.public_jwk() for key in self.published()]}

    def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        for key in self.published():
            if key.kid == kid:
                return key.private_key.public_key()
        return None
