"""Every httpx client of a test run shares the app's one TLS context (saas.http).

Tests make thousands of httpx clients (each `Browser`, each one-off `httpx.get`), and each
built its own `SSLContext`, loading the CA bundle: about 23 ms of CPU apiece, some 10% of a
stack test's time. The tests talk plain HTTP to loopback, so nothing about TLS is under test;
a client that asks for anything but httpx's defaults still gets its own context.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx._transports.default as httpx_transports

from saas.http import tls_context

_build = httpx_transports.create_ssl_context


def _shared_when_default(
    verify: ssl.SSLContext | str | bool = True,
    cert: Any = None,
    trust_env: bool = True,
) -> ssl.SSLContext:
    if verify is True and cert is None and trust_env:
        return tls_context()
    return _build(verify=verify, cert=cert, trust_env=trust_env)


def share_tls_context() -> None:
    # httpx's transports call this name (httpx/_transports/default.py); fail loudly if a new
    # httpx moves it, rather than quietly paying for a context per client again.
    if not hasattr(httpx_transports, "create_ssl_context"):
        raise RuntimeError("httpx no longer builds TLS contexts where tests/support/tls.py hooks")
    httpx_transports.create_ssl_context = _shared_when_default
