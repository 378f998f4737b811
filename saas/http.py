"""Outgoing HTTP: every client the app makes shares one TLS configuration.

An httpx client builds its own `ssl.SSLContext` unless given one, loading the whole CA bundle
each time: about 20 to 45 ms of CPU per client on this project's machines, which was most of a
sign-in callback's own work (Authlib's token client is made per code exchange). One context,
built on first use with httpx's defaults (certifi's bundle, or `SSL_CERT_FILE`/`SSL_CERT_DIR`
when set), serves them all; an `SSLContext` is meant to be shared.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
