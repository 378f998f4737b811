"""Email-domain normalization: the one rule both routing and storage use."""

from __future__ import annotations

import re

import idna

from saas.errors import InvalidInput

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_domain(value: str) -> str:
    """Lowercase, IDNA A-label, no trailing dot; refuse anything that is not a host name."""
    candidate = value.strip().rstrip(".").lower()
    if not candidate or "@" in candidate or "/" in candidate:
        raise InvalidInput(f"{value!r} is not a domain name", field="domain")
    try:
        # IDNA 2008 with UTS #46 mapping, as browsers and mail systems do today.
        ascii_form = idna.encode(candidate, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise InvalidInput(
            f"{value!r} is not a valid internationalized domain", field="domain"
        ) from None
    labels = ascii_form.split(".")
    if len(ascii_form) > 253 or len(labels) < 2 or not all(_LABEL.match(lb) for lb in labels):
        raise InvalidInput(f"{value!r} is not a domain name", field="domain")
    if labels[-1].isdigit():
        raise InvalidInput(f"{value!r} is an address, not a domain", field="domain")
    return ascii_form


def normalize_email(value: str) -> str:
    """Lowercase the whole address and normalize its domain; refuse malformed addresses."""
    candidate = value.strip()
    local, sep, domain = candidate.rpartition("@")
    # Not printable: control characters (NUL above all), format characters, separators.
    # Mail systems, Auth0 and PostgreSQL each refuse or mangle them differently.
    if not sep or not local or len(local) > 64 or not local.isprintable() or " " in local:
        raise InvalidInput(f"{value!r} is not an email address", field="email")
    return f"{local.lower()}@{normalize_domain(domain)}"


def email_domain(email: str) -> str:
    return normalize_email(email).rpartition("@")[2]
