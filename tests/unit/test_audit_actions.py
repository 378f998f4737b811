"""Every audit action has a label, and the code can only write actions from the enumeration."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.actions import AuditAction
from saas.audit.services import Actor, AuditService
from saas.db.models import AuditEvent

SOURCE = Path(__file__).resolve().parents[2] / "saas"


def test_each_action_has_a_distinct_value_and_a_label() -> None:
    assert len({action.value for action in AuditAction}) == len(AuditAction)
    for action in AuditAction:
        assert action.label.strip(), action
        assert action.value.count(".") == 1, action


def _record_calls() -> list[tuple[Path, ast.Call]]:
    calls = []
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "record"
            ):
                calls.append((path, node))
    return calls


def _names_actions(node: ast.expr) -> bool:
    """`AuditAction.X`, a conditional between such members, or a parameter passed through."""
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, ast.Name) and node.value.id == "AuditAction"
    if isinstance(node, ast.IfExp):
        return _names_actions(node.body) and _names_actions(node.orelse)
    return isinstance(node, ast.Name)


def test_every_recorded_action_comes_from_the_enumeration() -> None:
    calls = _record_calls()
    assert len(calls) >= 15  # the services that write audit events, found by the walk
    for path, call in calls:
        action = (
            call.args[0]
            if call.args
            else next((k.value for k in call.keywords if k.arg == "action"), None)
        )
        assert action is not None, f"{path}:{call.lineno}"
        assert _names_actions(action), f"{path}:{call.lineno} records {ast.unparse(action)}"


async def test_a_plain_string_is_refused_before_anything_is_written(session: AsyncSession) -> None:
    with pytest.raises(TypeError, match="AuditAction"):
        await AuditService(session=session).record(
            "domain.verified",  # type: ignore[arg-type]
            actor=Actor.system(),
            organization_id=None,
        )
    assert (await session.execute(select(func.count()).select_from(AuditEvent))).scalar_one() == 0
