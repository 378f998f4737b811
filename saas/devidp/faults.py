"""Fault injection for the Management API, so tests can exercise retries, timeouts and 401s.

A fault matches by HTTP method and a glob over the path (``/api/v2/organizations/*/members``)
and fires either for the next ``count`` matching calls or for a ``fraction`` of them. It can
answer 429, answer 500, or hang for some seconds before answering normally. A 429 carries
Auth0's ``X-RateLimit-*`` headers, its reset ``reset_after`` seconds ahead (default 1), and a
``Retry-After`` only when the fault names one (``retry_after``): Auth0 documents the former.

Apart from those, ``revoke_m2m_tokens`` revokes every machine-to-machine token issued so far,
as rotating the M2M client's credentials or the tenant's signing key does at Auth0: the
Management API then answers 401 to them, and a client must fetch a new token.

State is in memory: faults are a test-time switch, not data.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import random
import threading
from dataclasses import asdict, dataclass
from typing import Any, Literal

FaultKind = Literal["429", "500", "hang"]
_KINDS = ("429", "500", "hang")
_METHODS = {"*", "GET", "POST", "PATCH", "PUT", "DELETE"}


class FaultSpecError(ValueError):
    pass


@dataclass(slots=True)
class Fault:
    id: int
    method: str
    path: str
    kind: FaultKind
    count: int | None
    fraction: float | None
    retry_after: int | None
    reset_after: int
    hang_seconds: float
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and fnmatch.fnmatchcase(path, self.path)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["remaining"] = None if self.count is None else self.count - self.fired
        return data


class FaultBook:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._random = random.Random()  # noqa: S311 - test fault sampling, not security
        # Digests of the M2M tokens issued since the last revocation, and of those revoked.
        self._issued: set[str] = set()
        self._revoked: set[str] = set()

    def add(self, spec: dict[str, Any]) -> Fault:
        method = str(spec.get("method", "*")).upper()
        if method not in _METHODS:
            raise FaultSpecError(f"method must be one of {sorted(_METHODS)}")
        path = spec.get("path")
        if not isinstance(path, str) or not path.startswith("/api/v2/"):
            raise FaultSpecError("path must be a glob starting with /api/v2/")
        kind = str(spec.get("response", ""))
        if kind not in _KINDS:
            raise FaultSpecError('response must be "429", "500" or "hang"')
        count = spec.get("count")
        fraction = spec.get("fraction")
        if (count is None) == (fraction is None):
            raise FaultSpecError("give exactly one of count (next N calls) or fraction (0..1)")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise FaultSpecError("count must be a positive integer")
        if fraction is not None and (
            not isinstance(fraction, int | float) or not 0 < float(fraction) <= 1
        ):
            raise FaultSpecError("fraction must be in (0, 1]")
        retry_after = spec.get("retry_after")
        reset_after = spec.get("reset_after", 1 if retry_after is None else retry_after)
        hang_seconds = spec.get("hang_seconds", 0)
        if retry_after is not None and (not isinstance(retry_after, int) or retry_after < 0):
            raise FaultSpecError("retry_after must be a non-negative integer (seconds)")
        if not isinstance(reset_after, int) or reset_after < 0:
            raise FaultSpecError("reset_after must be a non-negative integer (seconds)")
        if not isinstance(hang_seconds, int | float) or not 0 <= hang_seconds <= 300:
            raise FaultSpecError("hang_seconds must be between 0 and 300")
        if kind == "hang" and hang_seconds <= 0:
            raise FaultSpecError("a hang fault needs hang_seconds > 0")
        with self._lock:
            fault = Fault(
                id=next(self._ids),
                method=method,
                path=path,
                kind=kind,  # type: ignore[arg-type]
                count=count,
                fraction=None if fraction is None else float(fraction),
                retry_after=retry_after,
                reset_after=reset_after,
                hang_seconds=float(hang_seconds),
            )
            self._faults.append(fault)
            return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The fault to apply to this call, if any (and account for it)."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                if fault.count is not None:
                    fault.fired += 1
                    if fault.fired >= fault.count:
                        self._faults.remove(fault)
                    return fault
                if fault.fraction is not None and self._random.random() < fault.fraction:
                    fault.fired += 1
                    return fault
            return None

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    # ---- machine-to-machine tokens ---------------------------------------------------

    def issued_m2m_token(self, token: str) -> None:
        digest = _digest(token)
        with self._lock:
            # Issued again (the same claims within one second sign to the same token): a token
            # issued after a revocation is valid.
            self._revoked.discard(digest)
            self._issued.add(digest)

    def revoke_m2m_tokens(self) -> int:
        """Revoke every M2M token issued so far; tokens issued later are valid."""
        with self._lock:
            revoked = len(self._issued)
            self._revoked |= self._issued
            self._issued = set()
            return revoked

    def is_revoked(self, token: str) -> bool:
        with self._lock:
            return _digest(token) in self._revoked


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
