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


# RFC 5322 `atext` besides letters and digits: what an unquoted local part may hold (the same
# set browsers accept in <input type=email>). Quoted local parts ("a b"@x) and comments are
# legal in mail but not something anyone signs in with, so they are refused.
_LOCAL_SYMBOLS = frozenset("!#$%&'*+/=?^_`{|}~-")


def _is_local_part(local: str) -> bool:
    """A dot-atom: atoms of letters, digits and `_LOCAL_SYMBOLS`, joined by single dots.
    Letters and digits beyond ASCII are allowed (RFC 6532); anything else that is not
    printable — NUL, format characters, zero-width spaces — or is markup (<, >) is not."""
    atoms = local.split(".")
    return all(atom and all(ch.isalnum() or ch in _LOCAL_SYMBOLS for ch in atom) for atom in atoms)


def normalize_email(value: str) -> str:
    """Lowercase the whole address and normalize its domain; refuse malformed addresses."""
    candidate = value.strip()
    local, sep, domain = candidate.rpartition("@")
    # Mail systems, Auth0 and PostgreSQL each refuse or mangle odd local parts differently.
    if not sep or not local or len(local) > 64 or not _is_local_part(local):
        raise InvalidInput(f"{value!r} is not an email address", field="email")
    return f"{local.lower()}@{normalize_domain(domain)}"


def email_domain(email: str) -> str:
    return normalize_email(email).rpartition("@")[2]
