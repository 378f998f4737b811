"""The sign-in counter a request counts against: its address, an IPv6 client's /64."""

from __future__ import annotations

from typing import Any

import pytest

from saas.web.rate_limit import ClientAddressUnknown, client_key


def scope(client: Any) -> Any:
    return {"type": "http", "client": client}


def test_ipv6_clients_of_one_slash_64_share_a_counter() -> None:
    one_subscriber = [
        "2001:db8:1:2::1",
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
        "2001:db8:1:2:a1b2:c3d4:e5f6:789",  # a privacy address the same host picks next
    ]
    assert {client_key(scope((address, 443))) for address in one_subscriber} == {
        "2001:db8:1:2::/64"
    }
    assert client_key(scope(("2001:db8:1:3::1", 443))) == "2001:db8:1:3::/64"
    assert client_key(scope(("::1", 50000))) == "::/64"


def test_ipv4_clients_count_by_address() -> None:
    assert client_key(scope(("203.0.113.7", 1))) == "203.0.113.7"
    assert client_key(scope(("203.0.113.8", 1))) == "203.0.113.8"
    # An IPv4 client reaching a dual-stack socket is the IPv4 address it is.
    assert client_key(scope(("::ffff:203.0.113.7", 1))) == "203.0.113.7"


def test_a_name_instead_of_an_address_is_counted_as_given() -> None:
    assert client_key(scope(("testclient", 50000))) == "testclient"


@pytest.mark.parametrize("client", [None, ("", 0)])
def test_a_request_without_an_address_is_refused_not_pooled(client: Any) -> None:
    with pytest.raises(ClientAddressUnknown) as refused:
        client_key(scope(client))
    assert refused.value.status_code == 400
