"""Run code off the test's thread.

Playwright's sync API keeps an event loop marked as running in the test's thread while a
browser is up, so `asyncio.run` (seeding, database set-up) there fails; a worker thread has no
loop of its own and can run it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def off_loop(function: Callable[..., T], *args: Any) -> T:
    """Call `function` in a worker thread and wait for its result."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coroutine)`, safe to call whether or not this thread has a running loop."""
    return off_loop(asyncio.run, coroutine)
