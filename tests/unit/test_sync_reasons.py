"""The reasons people see for a failed sync: plain words for each error the Management client
records (saas/auth0/management.py), never the raw text."""

from __future__ import annotations

import pytest

from saas.auth0.sync_state import plain_reason


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            "the Auth0 connection 'globex-oidc' belongs to someone else; refusing to change it",
            "did not create",
        ),
        ("no Auth0 role named 'viewer'", "no role with this name"),
        ("GET https://t.auth0.com/api/v2/roles: timed out", "did not answer in time"),
        ("POST https://t.auth0.com/api/v2/connections: rate limited", "too many requests"),
        ("PATCH https://t.auth0.com/api/v2/connections/c: 401 Invalid token", "credentials"),
        ("POST https://t.auth0.com/api/v2/organizations: 403 Insufficient scope", "not allowed"),
        ("DELETE https://t.auth0.com/api/v2/organizations/o: 503", "had an error"),
        (
            "No result was recorded for its last attempts: the worker running it stopped each "
            "time.",
            "never finished",
        ),
        ("ValueError: something odd", "The operator can see the details."),
        (None, "The operator can see the details."),
    ],
)
def test_each_failure_has_plain_words(error: str | None, words: str) -> None:
    reason = plain_reason(error)
    assert words in reason
    assert "https://" not in reason
    if error:
        assert error not in reason
