"""The Management API's rate-limit window, as the dev IdP reports it in Auth0's headers
(``saas.devidp.management.rate_limit``)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

# The dev IdP's own numbers: Auth0's depend on the plan and the endpoint.
LIMIT = 50
WINDOW_SECONDS = 1.0


@dataclass(slots=True)
class RateLimitWindow:
    """The current window's request count; one per dev IdP (its requests share one budget, as
    a tenant's Management API calls do)."""

    limit: int = LIMIT
    window_seconds: float = WINDOW_SECONDS
    _started: float = 0.0
    _used: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, now: float) -> tuple[int, int, int]:
        """Count one request: (limit, remaining, reset as UNIX seconds)."""
        with self._lock:
            if now >= self._started + self.window_seconds:
                self._started = math.floor(now / self.window_seconds) * self.window_seconds
                self._used = 0
            self._used += 1
            reset = math.ceil(self._started + self.window_seconds)
            return self.limit, max(0, self.limit - self._used), reset
