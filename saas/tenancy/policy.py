"""Who may grant which role, change whom to which role, and remove whom (DESIGN.md, `*`).

Pure answers from roles alone: `None` when allowed, otherwise the refusal to raise. The
membership and invitation services ask with the live roles they read inside the write's
transaction; the members page asks with the viewer's role to decide which role options and
buttons to offer. One home, so the controls shown can never disagree with the rule enforced.

`actor=None` is the platform itself (seed, operator console, CLI), which these rules do not
restrict. Rules that need the database (the last owner) stay with the service that locks it.
"""

from __future__ import annotations

from saas.errors import Forbidden
from saas.tenancy.permissions import ROLE_RANK, Permission, Role, has_permission, outranks_or_equals

# Highest first: the order role pickers list them in.
ROLES_BY_RANK: tuple[Role, ...] = tuple(sorted(Role, key=ROLE_RANK.__getitem__, reverse=True))


def grant_refusal(actor: Role | None, role: Role) -> Forbidden | None:
    """Nobody hands out a role above their own (memberships and invitations alike)."""
    if actor is not None and not outranks_or_equals(actor, role):
        return Forbidden(f"You cannot grant the {role} role: it is above your own.", field="role")
    return None


def check_may_grant(actor: Role | None, role: Role) -> None:
    if (refusal := grant_refusal(actor, role)) is not None:
        raise refusal


def grantable_roles(actor: Role) -> list[Role]:
    """Roles the actor may hand out, highest first."""
    return [role for role in ROLES_BY_RANK if grant_refusal(actor, role) is None]


def _manage_refusal(actor: Role | None) -> Forbidden | None:
    if actor is not None and not has_permission(actor, Permission.MEMBERS_MANAGE):
        return Forbidden(f"Your role does not allow this ({Permission.MEMBERS_MANAGE}).")
    return None


def role_change_refusal(actor: Role | None, target: Role, requested: Role) -> Forbidden | None:
    """May `actor` change a member whose role is `target` to `requested`?"""
    refusal = _manage_refusal(actor) or grant_refusal(actor, requested)
    if refusal is None and target == Role.OWNER and actor not in (None, Role.OWNER):
        refusal = Forbidden("Only an owner can change another owner's role.")
    return refusal


def role_options(actor: Role, target: Role) -> list[Role]:
    """The roles `actor` may set on a member whose role is `target`, highest first; empty
    when they may not change that member at all."""
    return [role for role in ROLES_BY_RANK if role_change_refusal(actor, target, role) is None]


def removal_refusal(actor: Role | None, target: Role, *, leaving: bool = False) -> Forbidden | None:
    """May `actor` remove a member whose role is `target`? `leaving`: the member removes
    themselves, which needs no power over others (the last-owner rule still applies)."""
    refusal = None if leaving else _manage_refusal(actor)
    if refusal is None and target == Role.OWNER and actor not in (None, Role.OWNER):
        refusal = Forbidden("Only an owner can remove another owner.")
    return refusal
