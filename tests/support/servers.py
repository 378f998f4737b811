"""Run ASGI apps under uvicorn on real loopback sockets for the duration of a test."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _LoopRecordingServer(uvicorn.Server):
    """uvicorn's server, remembering the event loop it serves on, so a test can run code
    there (stop the app's background worker, clear its stores) between requests."""

    loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)


@dataclass(frozen=True)
class Served:
    url: str
    loop: asyncio.AbstractEventLoop

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run `coroutine` on the server's loop and wait for its result (from any thread)."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)


@contextmanager
def serving(
    app: Callable[..., Any],
    port: int | None = None,
    timeout: float = 15.0,
    *,
    host: str = "127.0.0.1",
    uds: str | None = None,
) -> Iterator[Served]:
    """Serve `app` on `host` (or the Unix socket `uds`) in a background thread; yields its
    base URL (for a Unix socket, one to use with a client bound to that socket) and its loop."""
    if uds is None:
        port = port or free_port(host)
    config = uvicorn.Config(
        app,
        host=host,
        port=port or 0,
        uds=uds,
        log_level="warning",
        lifespan="on",
    )
    server = _LoopRecordingServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.01)
    assert server.loop is not None
    if uds is not None:
        url = "http://localhost"
    else:
        url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    try:
        yield Served(url=url, loop=server.loop)
    finally:
        server.should_exit = True
        thread.join(timeout)


@contextmanager
def serve(
    app: Callable[..., Any],
    port: int | None = None,
    timeout: float = 15.0,
    *,
    host: str = "127.0.0.1",
    uds: str | None = None,
) -> Iterator[str]:
    """As `serving`, yielding only the base URL."""
    with serving(app, port, timeout, host=host, uds=uds) as served:
        yield served.url
