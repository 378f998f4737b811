"""The issuer's signing keys, cached by `kid`.

An unknown `kid` triggers one refetch (the issuer may have rotated keys), but refetches are
rate-limited so a flood of tokens with made-up `kid`s cannot turn us into a JWKS hammer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import jwt
import structlog

logger = structlog.get_logger("saas.login.jwks")


class JWKSUnavailable(Exception):
    """The key set could not be fetched or parsed."""


class JWKSCache:
    def __init__(
        self,
        jwks_uri: str,
        http: httpx.AsyncClient,
        *,
        min_refetch_interval: float = 30.0,
        max_age: float = 3600.0,
    ) -> None:
        self.jwks_uri = jwks_uri
        self._http = http
        self._min_refetch_interval = min_refetch_interval
        self._max_age = max_age
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._refetched_at: float | None = None  # the last refetch for an unknown kid
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def get_signing_key(self, kid: str) -> Any:
        """The public key for `kid`, or None when the issuer does not publish it."""
        fetched_now = self._is_stale()
        if fetched_now:
            await self._refresh(force=True)
        key = self._keys.get(kid)
        if key is None and not fetched_now:
            # The issuer may have rotated its keys since we fetched them: look once more.
            await self._refresh(force=False)
            key = self._keys.get(kid)
        return key

    def _is_stale(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at > self._max_age

    async def _refresh(self, *, force: bool) -> bool:
        """Fetch the key set; False when rate-limited. Concurrent callers share one fetch."""
        async with self._lock:
            now = time.monotonic()
            if not force:
                # Rate-limit refetches for unknown kids against each other, not against the
                # regular fetch: a key rotated just after that fetch must still be found.
                if (
                    self._refetched_at is not None
                    and now - self._refetched_at < self._min_refetch_interval
                ):
                    return False
                self._refetched_at = now
            if force and not self._is_stale():
                return True  # another task refreshed while we waited for the lock
            await self._fetch()
            return True

    async def _fetch(self) -> None:
        try:
            response = await self._http.get(self.jwks_uri, timeout=5.0)
            response.raise_for_status()
            key_set = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as error:
            logger.warning("jwks_fetch_failed", uri=self.jwks_uri, error=type(error).__name__)
            raise JWKSUnavailable(str(error)) from error
        self._keys = {
            key.key_id: key.key
            for key in key_set.keys
            if key.key_id and key.key_type == "RSA" and key.public_key_use in (None, "sig")
        }
        self._fetched_at = time.monotonic()
        self.fetch_count += 1
