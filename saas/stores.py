"""The key-value stores kept outside SQL (sessions, sign-in counters).

Redis when REDIS_URL is set; files under STATE_DIR otherwise. Both kinds can count requests in
a fixed window atomically (`WindowCounter`): Redis for every process sharing it, files only
within one process, so without Redis the sign-in limit holds per app process.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio
import msgspec
from litestar.stores.file import FileStore
from litestar.stores.redis import RedisStore

if TYPE_CHECKING:
    from os import PathLike


@dataclass(frozen=True, slots=True)
class WindowCount:
    count: int  # requests in the current window, this one included
    resets_in: float  # seconds until the window closes and the count starts again


@runtime_checkable
class WindowCounter(Protocol):
    async def hit(self, key: str, window_seconds: int) -> WindowCount:
        """Count one request against `key` in its current fixed window, atomically."""
        ...


# INCR and the expiry in one script: Redis runs it without interleaving any other command, so
# concurrent callers on any number of processes each get a distinct count. The expiry is set
# when the key has none (a new window), never moved, so the window stays fixed.
_HIT_SCRIPT = b"""
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


class CountingRedisStore(RedisStore):
    """Litestar's Redis store plus an atomic fixed-window counter."""

    __slots__ = ("_hit_script",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hit_script = self._redis.register_script(_HIT_SCRIPT)

    async def hit(self, key: str, window_seconds: int) -> WindowCount:
        count, ttl_ms = await self._hit_script(
            keys=[self._make_key(key)], args=[window_seconds * 1000]
        )
        return WindowCount(count=int(count), resets_in=int(ttl_ms) / 1000)


class CountingFileStore(FileStore):
    """A file store with a fixed-window counter that is atomic within this process only."""

    __slots__ = ("_lock",)

    def __init__(self, path: PathLike[str], *, create_directories: bool = False) -> None:
        super().__init__(path, create_directories=create_directories)
        # One lock for every caller in the process (Litestar builds a middleware per route).
        self._lock = anyio.Lock()

    async def hit(self, key: str, window_seconds: int) -> WindowCount:
        async with self._lock:
            now = time.time()
            count, reset_at = 0, now + window_seconds
            raw = await self.get(key)
            if raw is not None:
                with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                    stored_count, stored_reset = msgspec.json.decode(raw, type=tuple[int, float])
                    if stored_reset > now:
                        count, reset_at = stored_count, stored_reset
            count += 1
            await self.set(
                key,
                msgspec.json.encode((count, reset_at)),
                expires_in=max(1, math.ceil(reset_at - now)),
            )
            return WindowCount(count=count, resets_in=reset_at - now)
