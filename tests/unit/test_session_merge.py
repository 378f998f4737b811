"""A request's write-back applies its own changes to what the store holds now
(saas.login.sessions.merge_changes)."""

from __future__ import annotations

from saas.login.pending import MAX_PENDING, PENDING_TTL_SECONDS, still_open
from saas.login.sessions import merge_changes


def test_a_key_this_request_did_not_change_keeps_what_another_wrote() -> None:
    loaded = {"user_id": "u1", "last_seen_at": 10, "organization_id": "o1"}
    changed = {**loaded, "last_seen_at": 11}
    current = {**loaded, "organization_id": "o2"}  # another tab switched organization
    assert merge_changes(loaded, changed, current) == {
        "user_id": "u1",
        "last_seen_at": 11,
        "organization_id": "o2",
    }


def test_two_tabs_pending_sign_ins_both_survive() -> None:
    loaded: dict[str, object] = {"last_seen_at": 10}
    changed = {"last_seen_at": 10, "pending_login": {"tab-b": {"nonce": "b"}}}
    current = {"last_seen_at": 10, "pending_login": {"tab-a": {"nonce": "a"}}}
    assert merge_changes(loaded, changed, current)["pending_login"] == {
        "tab-a": {"nonce": "a"},
        "tab-b": {"nonce": "b"},
    }


def test_taking_the_last_pending_sign_in_keeps_one_added_meanwhile() -> None:
    loaded = {"pending_login": {"tab-a": {"nonce": "a"}}}
    changed: dict[str, object] = {}  # the callback took tab A's; the key went with it
    current = {"pending_login": {"tab-a": {"nonce": "a"}, "tab-b": {"nonce": "b"}}}
    assert merge_changes(loaded, changed, current) == {"pending_login": {"tab-b": {"nonce": "b"}}}


def test_an_emptied_nested_value_is_dropped_and_a_removed_key_goes() -> None:
    loaded = {"pending_login": {"tab-a": {}}, "device": "Firefox"}
    changed: dict[str, object] = {}
    current = {"pending_login": {"tab-a": {}}, "device": "Firefox"}
    assert merge_changes(loaded, changed, current) == {}


def test_a_value_this_request_replaced_wins() -> None:
    loaded = {"mfa_organization_id": None}
    changed = {"mfa_organization_id": "o1"}
    current = {"mfa_organization_id": None, "user_id": "u1"}
    assert merge_changes(loaded, changed, current) == {"mfa_organization_id": "o1", "user_id": "u1"}


def test_other_dict_values_are_replaced_whole() -> None:
    loaded: dict[str, object] = {}
    changed = {"sso_test_result": {"organization": "x", "claims": {"sub": "a"}}}
    current = {"sso_test_result": {"organization": "y", "error": "refused"}}
    assert merge_changes(loaded, changed, current) == changed


def test_only_open_sign_ins_carry_and_at_most_max_pending() -> None:
    now = 1_000_000.0
    entries = {f"s{i}": {"created_at": int(now) - i} for i in range(8)}
    entries["old"] = {"created_at": int(now) - PENDING_TTL_SECONDS - 1}
    carried = still_open({"pending_login": entries}, now)
    assert set(carried) == {f"s{i}" for i in range(MAX_PENDING)}
