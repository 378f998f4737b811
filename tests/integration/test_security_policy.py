"""The Security settings page: owners require MFA and shorten session timeouts, within the
platform's; every other role is refused; bad input is a form error, never a 500 or a partial
write; the timeouts are enforced at the next request; every change is audited."""

from __future__ import annotations

import re
import time

import msgspec
import pytest
from litestar.stores.file import StorageObject
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.actions import AuditAction
from saas.db.models import AuditEvent, Organization
from saas.login.sessions import CREATED_AT, LAST_SEEN_AT, USER_ID
from tests.support.stack import Browser, Stack, in_acme

_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
URL = "/o/acme/settings/security"
ROLES = {
    "alice@acme.example": 200,  # owner
    "adam@acme.example": 403,  # admin
    "bob@acme.example": 403,  # member
    "vera@acme.example": 403,  # viewer
}


def signed_in(stack: Stack, email: str) -> Browser:
    browser = stack.browser()
    assert browser.login(email).status_code == 200
    assert browser.follow(browser.get("/o/acme/login?silent=true")).status_code == 200
    return browser


def csrf(browser: Browser, path: str = "/o/acme/") -> str:
    found = _CSRF.search(browser.get(path).text)
    assert found
    return found[1]


def policy(stack: Stack) -> tuple[bool, int | None, int | None]:
    async def read(_: AsyncSession, org: Organization) -> tuple[bool, int | None, int | None]:
        return (
            org.require_mfa,
            org.session_idle_timeout_seconds,
            org.session_absolute_timeout_seconds,
        )

    return in_acme(stack.settings, read)


def changes(stack: Stack) -> list[AuditEvent]:
    async def read(session: AsyncSession, org: Organization) -> list[AuditEvent]:
        rows = await session.scalars(
            select(AuditEvent).where(
                AuditEvent.organization_id == org.id,
                AuditEvent.action == AuditAction.SECURITY_POLICY_CHANGED.value,
            )
        )
        return list(rows)

    return in_acme(stack.settings, read)


@pytest.mark.parametrize(("email", "expected"), ROLES.items())
def test_only_owners_see_and_change_the_policy(stack: Stack, email: str, expected: int) -> None:
    browser = signed_in(stack, email)
    page = browser.get(URL)
    assert page.status_code == expected
    nav = browser.get("/o/acme/").text
    assert (f'href="{URL}"' in nav) is (expected == 200)
    saved = browser.client.post(
        stack.app_url + URL,
        data={"idle_minutes": "10", "absolute_minutes": "60", "_csrf_token": csrf(browser)},
    )
    if expected == 200:
        assert saved.status_code == 303
        assert "The security policy was saved" in browser.follow(saved).text
        assert policy(stack) == (False, 600, 3600)
        (entry,) = changes(stack)
        assert entry.details["to"] == {
            "require_mfa": False,
            "idle_seconds": 600,
            "absolute_seconds": 3600,
        }
    else:
        assert saved.status_code == 403
        assert policy(stack) == (False, None, None)
        assert changes(stack) == []


BAD = [
    ({"idle_minutes": "ten"}, "whole number of minutes", "idle_minutes"),
    ({"idle_minutes": "-5"}, "whole number of minutes", "idle_minutes"),
    ({"idle_minutes": "0"}, "at least 1 minute", "idle_minutes"),
    ({"idle_minutes": "99999999999"}, "whole number of minutes", "idle_minutes"),
    ({"idle_minutes": "31"}, "at most 30 minutes", "idle_minutes"),  # platform idle: 30
    ({"absolute_minutes": "4"}, "at least 5 minutes", "absolute_minutes"),
    ({"absolute_minutes": "721"}, "at most 720 minutes", "absolute_minutes"),
    (
        {"idle_minutes": "20", "absolute_minutes": "10"},
        "no longer than the session",
        "idle_minutes",
    ),
    ({"idle_minutes": "1.5"}, "whole number of minutes", "idle_minutes"),
]


@pytest.mark.parametrize(("fields", "message", "field"), BAD)
def test_bad_input_is_a_form_error_and_nothing_is_written(
    stack: Stack, fields: dict[str, str], message: str, field: str
) -> None:
    owner = signed_in(stack, "alice@acme.example")
    data = {"require_mfa": "on", "idle_minutes": "", "absolute_minutes": "", **fields}
    plain = owner.client.post(stack.app_url + URL, data={**data, "_csrf_token": csrf(owner)})
    assert plain.status_code == 422, plain.text
    assert message in plain.text
    assert f'name="{field}"' in plain.text
    assert 'aria-invalid="true"' in plain.text
    # htmx: just the form, with what was typed.
    fragment = owner.client.post(
        stack.app_url + URL,
        data=data,
        headers={"hx-request": "true", "x-csrftoken": csrf(owner)},
    )
    assert fragment.status_code == 422
    assert fragment.text.lstrip().startswith("<form")
    assert message in fragment.text
    assert policy(stack) == (False, None, None)
    assert changes(stack) == []


def test_cross_tenant_owner_gets_404(stack: Stack) -> None:
    grace = stack.browser()
    grace.login("grace@globex.example")  # owner of globex
    assert grace.get(URL).status_code == 404
    refused = grace.client.post(
        stack.app_url + URL, data={"idle_minutes": "5", "_csrf_token": csrf(grace, "/login")}
    )
    assert refused.status_code == 404
    assert policy(stack) == (False, None, None)


def age_sessions(stack: Stack, *, created_by: int = 0, seen_by: int = 0) -> None:
    """Move the stored sessions' clocks back, as if time had passed."""
    for path in (stack.settings.state_dir / "stores" / "sessions").iterdir():
        try:
            obj = msgspec.msgpack.decode(path.read_bytes(), type=StorageObject)
            data = msgspec.json.decode(obj.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if isinstance(data, dict) and data.get(USER_ID):
            data[CREATED_AT] -= created_by
            data[LAST_SEEN_AT] -= seen_by
            path.write_bytes(
                msgspec.msgpack.encode(
                    StorageObject(data=msgspec.json.encode(data), expires_at=obj.expires_at)
                )
            )


def set_policy(stack: Stack, **values: object) -> None:
    async def write(session: AsyncSession, org: Organization) -> None:
        await session.execute(
            update(Organization).where(Organization.id == org.id).values(**values)
        )

    in_acme(stack.settings, write)


def test_the_organizations_idle_timeout_signs_out_at_the_next_request(stack: Stack) -> None:
    bob = signed_in(stack, "bob@acme.example")
    set_policy(stack, session_idle_timeout_seconds=5 * 60)
    age_sessions(stack, seen_by=4 * 60)
    assert bob.get("/o/acme/").status_code == 200  # 4 minutes idle: within
    age_sessions(stack, seen_by=6 * 60)
    out = bob.get("/o/acme/")
    assert out.status_code == 303
    assert out.headers["location"].startswith("/o/acme/login")
    assert bob.get("/account/sessions").status_code == 303  # the session is gone, not refused


def test_the_organizations_session_lifetime_signs_out_however_active(stack: Stack) -> None:
    bob = signed_in(stack, "bob@acme.example")
    set_policy(stack, session_absolute_timeout_seconds=10 * 60)
    age_sessions(stack, created_by=9 * 60)
    assert bob.get("/o/acme/").status_code == 200
    age_sessions(stack, created_by=2 * 60)
    assert bob.get("/o/acme/").status_code == 303
    assert bob.get("/account/sessions").status_code == 303


def test_the_policy_cannot_lengthen_the_platforms_timeout(stack: Stack) -> None:
    # Written behind the service's back (the database allows up to 30 days): still the
    # platform's 30 idle minutes apply.
    bob = signed_in(stack, "bob@acme.example")
    set_policy(stack, session_idle_timeout_seconds=24 * 3600)
    age_sessions(stack, seen_by=31 * 60)
    assert bob.get("/o/acme/").status_code == 303


@pytest.mark.parametrize(
    "values",
    [
        {"session_idle_timeout_seconds": 59},
        {"session_idle_timeout_seconds": 31 * 24 * 3600},
        {"session_absolute_timeout_seconds": 299},
        {"session_idle_timeout_seconds": 900, "session_absolute_timeout_seconds": 600},
    ],
)
async def test_the_database_holds_the_bounds(session: AsyncSession, values: dict[str, int]) -> None:
    session.add(Organization(slug=f"ck-{time.time_ns()}", display_name="Bounds", **values))
    with pytest.raises(IntegrityError):
        await session.flush()
