"""Domain ownership by DNS: a TXT record `_saas-verification.<domain>` holding the token.

The nameserver is configurable (DNS_NAMESERVER=host:port) so tests can run a real local DNS
server; otherwise the system resolver is used.
"""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.resolver

RECORD_PREFIX = "_saas-verification"


def record_name(domain: str) -> str:
    return f"{RECORD_PREFIX}.{domain}"


def _resolver(nameserver: str | None) -> dns.asyncresolver.Resolver:
    if not nameserver:
        return dns.asyncresolver.Resolver()
    resolver = dns.asyncresolver.Resolver(configure=False)
    host, _, port = nameserver.rpartition(":") if ":" in nameserver else (nameserver, "", "53")
    resolver.nameservers = [host or nameserver]
    resolver.port = int(port or 53)
    resolver.lifetime = 5.0
    return resolver


async def txt_values(domain: str, nameserver: str | None) -> list[str]:
    try:
        answer = await _resolver(nameserver).resolve(record_name(domain), "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return []
    except dns.exception.Timeout:
        return []
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]


async def has_token(domain: str, token: str, nameserver: str | None) -> bool:
    return any(value.strip() == token for value in await txt_values(domain, nameserver))
