"""Fault injection for the Management API, so tests can exercise retries and timeouts.

A fault matches by HTTP method and a glob over the path (``/api/v2/organizations/*/members``)
and fires either for the next ``count`` matching calls or for a ``fraction`` of them. It can
answer 429 with ``Retry-After``, answer 500, or hang for some seconds before answering
normally. State is in memory: faults are a test-time switch, not data.
"""

from __future__ import annotations

import fnmatch
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
    retry_after: int
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
        retry_after = spec.get("retry_after", 1)
        hang_seconds = spec.get("hang_seconds", 0)
        if not isinstance(retry_after, int) or retry_after < 0:
            raise FaultSpecError("retry_after must be a non-negative integer (seconds)")
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
