"""Invitation tickets: random, single-purpose, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets


def new_ticket() -> str:
    return secrets.token_urlsafe(32)


def hash_ticket(ticket: str) -> str:
    # A fast hash is right here: the ticket has 256 bits of entropy, nothing to brute-force.
    return hashlib.sha256(ticket.encode("utf-8")).hexdigest()
