"""Who may change whom to which role, and remove whom: DESIGN.md's `*`, cell by cell.

The members service enforces these answers and the members page offers controls from them,
so both are checked here once, from the roles alone."""

from __future__ import annotations

import pytest

from saas.tenancy.permissions import Role
from saas.tenancy.policy import (
    grant_refusal,
    grantable_roles,
    removal_refusal,
    role_change_refusal,
    role_options,
)

OWNER, ADMIN, MEMBER, VIEWER = Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER
EVERY_ROLE = [OWNER, ADMIN, MEMBER, VIEWER]

# (actor, target) -> the roles the actor may set on that member, highest first.
EXPECTED_OPTIONS: dict[tuple[Role, Role], list[Role]] = {
    **{(OWNER, target): EVERY_ROLE for target in EVERY_ROLE},
    (ADMIN, OWNER): [],
    **{(ADMIN, target): [ADMIN, MEMBER, VIEWER] for target in (ADMIN, MEMBER, VIEWER)},
    **{(actor, target): [] for actor in (MEMBER, VIEWER) for target in EVERY_ROLE},
}


@pytest.mark.parametrize(("actor", "target"), list(EXPECTED_OPTIONS))
def test_role_options_cell(actor: Role, target: Role) -> None:
    assert role_options(actor, target) == EXPECTED_OPTIONS[actor, target]


@pytest.mark.parametrize("target", EVERY_ROLE)
@pytest.mark.parametrize("actor", EVERY_ROLE)
def test_removal_cell(actor: Role, target: Role) -> None:
    allowed = actor == OWNER or (actor == ADMIN and target != OWNER)
    assert (removal_refusal(actor, target) is None) is allowed


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_anyone_may_leave_and_the_platform_may_do_anything(role: Role) -> None:
    assert removal_refusal(role, role, leaving=True) is None
    assert removal_refusal(None, role) is None
    for requested in EVERY_ROLE:
        assert role_change_refusal(None, role, requested) is None


def test_refusals_say_why_and_name_their_field() -> None:
    above = role_change_refusal(ADMIN, MEMBER, OWNER)
    assert above is not None
    assert above.status_code == 403
    assert above.detail == "You cannot grant the owner role: it is above your own."
    assert above.field == "role"
    # Granting above your own is the first reason, as the form shows it beside the role.
    both = role_change_refusal(ADMIN, OWNER, OWNER)
    assert both is not None
    assert both.detail == above.detail
    owner = role_change_refusal(ADMIN, OWNER, MEMBER)
    assert owner is not None
    assert owner.detail == "Only an owner can change another owner's role."
    removal = removal_refusal(ADMIN, OWNER)
    assert removal is not None
    assert removal.detail == "Only an owner can remove another owner."
    lacking = role_change_refusal(MEMBER, VIEWER, VIEWER)
    assert lacking is not None
    assert lacking.status_code == 403


def test_grants() -> None:
    assert grantable_roles(OWNER) == EVERY_ROLE
    assert grantable_roles(ADMIN) == [ADMIN, MEMBER, VIEWER]
    assert grantable_roles(VIEWER) == [VIEWER]
    assert grant_refusal(None, OWNER) is None
    assert grant_refusal(MEMBER, ADMIN) is not None
