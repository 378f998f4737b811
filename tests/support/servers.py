"""Run ASGI apps under uvicorn on real loopback sockets for the duration of a test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(
    app: object,
    port: int | None = None,
    timeout: float = 15.0,
    *,
    host: str = "127.0.0.1",
    uds: str | None = None,
) -> Iterator[str]:
    """Serve `app` on `host` (or the Unix socket `uds`) in a background thread; yields its
    base URL (for a Unix socket, one to use with a client bound to that socket)."""
    if uds is None:
        port = port or free_port(host)
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port or 0,
        uds=uds,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.02)
    try:
        if uds is not None:
            yield "http://localhost"
        else:
            yield f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
