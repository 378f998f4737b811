"""The key-value stores kept outside SQL (sessions, sign-in counters), and their upkeep.

Redis when REDIS_URL is set; files under STATE_DIR otherwise. Both kinds can count requests in
a fixed window atomically (`WindowCounter`): Redis for every process sharing it, files only
within one process, so without Redis the sign-in limit holds per app process.

Files are deleted only when read after they expired; `sweep_expired_entries` deletes the rest
on a timer, so sessions nobody returns to and stale counters do not pile up on the disk.

A write that fails raises, from either kind (Redis: `RedisError`, files: `StoreUnavailable`):
a session that was not saved, or a sign-in attempt that was not counted, must not be answered
as if it had been.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio
import msgspec
import structlog
from litestar.concurrency import sync_to_thread
from litestar.stores.base import StorageObject, Store
from litestar.stores.file import FileStore
from litestar.stores.redis import RedisStore
from redis.exceptions import WatchError

if TYPE_CHECKING:
    from datetime import timedelta

    from litestar import Litestar

logger = structlog.get_logger("saas.stores")

# An interrupted write leaves its mkstemp() file behind; one this old is no write in progress.
_ORPHAN_TEMP_SECONDS = 3600
# Which members of a set a bounded clean-up looks at; not a secret, any fair choice will do.
_RANDOM = secrets.SystemRandom()


class StoreUnavailable(Exception):
    """The store could not keep what it was given (a full or read-only disk)."""


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


# Rewrites of one entry racing each other: after this many in a row, give up (and answer 503).
_CHANGE_ATTEMPTS = 20
_CHANGE_BACKOFF_SECONDS = 0.001  # times the attempt's number: at most 20 ms before the last


@runtime_checkable
class ChangeableEntries(Protocol):
    """Entries that can be read, changed and written back with no other write in between."""

    async def change(
        self, key: str, change: Callable[[bytes | None], bytes | None], expires_in: int | None
    ) -> bytes | None:
        """Replace the entry `key` with `change(current)`, where `current` is None when there is
        no entry, and `change` returns None for "no entry" (an entry found is deleted). No other
        write to `key` lands between the read and the write; a value equal to `current` is not
        written at all. Returns what `key` now holds."""
        ...


@runtime_checkable
class MemberSets(Protocol):
    """Named sets of strings beside the store's entries (the sessions each user holds)."""

    async def add_member(self, key: str, member: str, expires_in: int) -> None:
        """Add `member` to the set `key`; the set lives `expires_in` seconds after this add."""
        ...

    async def members(self, key: str) -> set[str]: ...

    async def sample_members(self, key: str, count: int) -> set[str]:
        """Up to `count` distinct members of the set `key`, chosen at random."""
        ...

    async def remove_members(self, key: str, members: Iterable[str]) -> None: ...


class CountingRedisStore(RedisStore):
    """Litestar's Redis store plus an atomic fixed-window counter, member sets and changes of
    one entry (`ChangeableEntries`)."""

    __slots__ = ("_hit_script",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hit_script = self._redis.register_script(_HIT_SCRIPT)

    async def hit(self, key: str, window_seconds: int) -> WindowCount:
        count, ttl_ms = await self._hit_script(
            keys=[self._make_key(key)], args=[window_seconds * 1000]
        )
        return WindowCount(count=int(count), resets_in=int(ttl_ms) / 1000)

    async def add_member(self, key: str, member: str, expires_in: int) -> None:
        name = self._make_key(key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(name, member)
            pipe.expire(name, expires_in)
            await pipe.execute()

    async def members(self, key: str) -> set[str]:
        found = await self._redis.smembers(self._make_key(key))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in found}

    async def sample_members(self, key: str, count: int) -> set[str]:
        # SRANDMEMBER with a positive count: distinct members, in O(count).
        found = await self._redis.srandmember(self._make_key(key), count)
        return {m.decode() if isinstance(m, bytes) else str(m) for m in found or ()}

    async def remove_members(self, key: str, members: Iterable[str]) -> None:
        gone = list(members)
        if gone:
            await self._redis.srem(self._make_key(key), *gone)

    async def change(
        self, key: str, change: Callable[[bytes | None], bytes | None], expires_in: int | None
    ) -> bytes | None:
        # Optimistic: WATCH the key, compute the change, and let MULTI/EXEC write it only if no
        # other client wrote the key meanwhile; otherwise read it again and recompute.
        name = self._make_key(key)
        async with self._redis.pipeline(transaction=True) as pipe:
            for attempt in range(_CHANGE_ATTEMPTS):
                await pipe.watch(name)
                current = await pipe.get(name)
                value = change(current.encode() if isinstance(current, str) else current)
                if value == current:
                    # Nothing to write. Skipping it also settles a burst of side-by-side
                    # requests at once: each retry finds what the first one wrote.
                    await pipe.reset()
                    return value
                pipe.multi()
                if value is None:
                    pipe.delete(name)
                else:
                    pipe.set(name, value, ex=expires_in)
                try:
                    await pipe.execute()
                except WatchError:
                    # Another writer won this round. Wait a little, at random, so writers that
                    # keep colliding spread out instead of one losing every round.
                    await anyio.sleep(_RANDOM.uniform(0, _CHANGE_BACKOFF_SECONDS * (attempt + 1)))
                    continue
                return value
        # The key is not named: a session's key is its id, which is as good as its cookie.
        raise WatchError(f"an entry kept changing under {_CHANGE_ATTEMPTS} attempts to change it")


class SweptFileStore(FileStore):
    """Litestar's file store, with a sweep that survives other processes writing meanwhile."""

    __slots__ = ()

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        try:
            await super().set(key, value, expires_in)
        except OSError as error:
            raise StoreUnavailable(f"cannot write to {self.path}: {error.strerror}") from error

    def _write_sync(self, target_file: anyio.Path, storage_obj: StorageObject) -> None:
        # FileStore._write_sync() swallows every OSError: on a full or read-only disk each
        # session and each sign-in count was dropped while the request went on as if saved
        # (the sign-in limit let every attempt through). The same write, letting it fail.
        descriptor, temporary = tempfile.mkstemp(dir=self.path, prefix=f"{target_file.name}.tmp")
        try:
            try:
                os.write(descriptor, storage_obj.to_bytes())
            finally:
                os.close(descriptor)
            os.replace(temporary, target_file)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    async def delete_expired(self) -> None:
        # FileStore.delete_expired() stops at the first file it cannot decode, such as a
        # temporary file another request is writing at that moment, and leaves the rest.
        await sync_to_thread(self._delete_expired_sync)

    def _delete_expired_sync(self) -> int:
        deleted = 0
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return 0
        now = time.time()
        for entry in entries:
            try:
                before = entry.stat()
                if ".tmp" in entry.name:
                    if now - before.st_mtime > _ORPHAN_TEMP_SECONDS:
                        Path(entry.path).unlink(missing_ok=True)
                    continue
                stored = StorageObject.from_bytes(Path(entry.path).read_bytes())
                # A request may have replaced the file since it was read (a new window, a new
                # session under the same id): delete only the very file that was read.
                if stored.expired and os.stat(entry.path).st_ino == before.st_ino:
                    Path(entry.path).unlink(missing_ok=True)
                    deleted += 1
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                continue
        return deleted


class IndexedFileStore(SweptFileStore):
    """A file store with member sets kept as one JSON list per set, and sets and entries
    changed under a lock of this process (file stores serve one process only)."""

    __slots__ = ("_set_lock",)

    def __init__(self, path: os.PathLike[str], *, create_directories: bool = False) -> None:
        super().__init__(path, create_directories=create_directories)
        self._set_lock = anyio.Lock()

    async def change(
        self, key: str, change: Callable[[bytes | None], bytes | None], expires_in: int | None
    ) -> bytes | None:
        async with self._set_lock:
            current = await self.get(key)
            value = change(current)
            if value == current:
                return value
            if value is None:
                await self.delete(key)
            else:
                await self.set(key, value, expires_in=expires_in)
            return value

    async def _read_set(self, key: str) -> set[str]:
        raw = await self.get(key)
        if raw is None:
            return set()
        try:
            return set(msgspec.json.decode(raw, type=list[str]))
        except (msgspec.DecodeError, msgspec.ValidationError):
            return set()

    async def add_member(self, key: str, member: str, expires_in: int) -> None:
        async with self._set_lock:
            found = await self._read_set(key)
            found.add(member)
            await self.set(key, msgspec.json.encode(sorted(found)), expires_in=expires_in)

    async def members(self, key: str) -> set[str]:
        return await self._read_set(key)

    async def sample_members(self, key: str, count: int) -> set[str]:
        found = sorted(await self._read_set(key))
        return set(_RANDOM.sample(found, min(count, len(found))))

    async def remove_members(self, key: str, members: Iterable[str]) -> None:
        gone = set(members)
        if not gone:
            return
        async with self._set_lock:
            found = await self._read_set(key)
            if not found & gone:
                return
            left = found - gone
            if not left:
                await self.delete(key)
                return
            # Keep the set's own deadline: a removal must not lengthen it.
            remaining = await self.expires_in(key)
            await self.set(
                key, msgspec.json.encode(sorted(left)), expires_in=max(1, remaining or 1)
            )


class CountingFileStore(SweptFileStore):
    """A file store with a fixed-window counter that is atomic within this process only."""

    __slots__ = ("_lock",)

    def __init__(self, path: os.PathLike[str], *, create_directories: bool = False) -> None:
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


def sweep_expired_entries(
    stores: Iterable[Store], interval_seconds: float
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A lifespan task that deletes expired entries from the file stores every interval."""
    swept = [store for store in stores if isinstance(store, FileStore)]

    async def sweep_forever() -> None:
        while True:
            for store in swept:
                try:
                    await store.delete_expired()
                except Exception:  # a full or unreadable disk must not end the sweeping
                    logger.exception("store_sweep_failed", path=str(store.path))
            await asyncio.sleep(interval_seconds)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        if not swept:
            yield
            return
        task = asyncio.create_task(sweep_forever(), name="store-sweep")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return lifespan
