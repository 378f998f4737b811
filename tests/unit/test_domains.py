from __future__ import annotations

import pytest

from saas.errors import InvalidInput
from saas.organizations.domains import email_domain, normalize_domain, normalize_email


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("acme.example", "acme.example"),
        ("ACME.Example.", "acme.example"),
        ("  acme.example  ", "acme.example"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("\uff25xample.com", "example.com"),  # full-width letters map per UTS #46
        ("sub.acme.example", "sub.acme.example"),
    ],
)
def test_domains_normalize_to_one_spelling(raw: str, normalized: str) -> None:
    assert normalize_domain(raw) == normalized


@pytest.mark.parametrize(
    "raw",
    ["", "localhost", "a..b", "-acme.example", "acme-.example", "1.2.3.4", "a@b.c", "x/y.com"],
)
def test_non_domains_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_domain(raw)


def test_emails_normalize_local_part_and_domain() -> None:
    assert normalize_email(" Alice@ACME.Example. ") == "alice@acme.example"
    assert email_domain("bob@Bücher.example") == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "raw",
    [
        "alice",
        "@acme.example",
        "alice@",
        "al ice@acme.example",
        "<script>alert(1)</script>@acme.example",
        "<x>(y)@acme.example",
        '"quoted"@acme.example',
        ".alice@acme.example",
        "alice.@acme.example",
        "al..ice@acme.example",
        "a\x00b@example.org",
        "a\u200bb@acme.example",  # zero-width space
    ],
)
def test_malformed_emails_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_email(raw)


@pytest.mark.parametrize(
    "raw",
    ["o'brien@acme.example", "first.last+tag@acme.example", "josé@acme.example", "a_b-c@x.example"],
)
def test_ordinary_addresses_are_accepted(raw: str) -> None:
    assert normalize_email(raw) == raw.lower()
