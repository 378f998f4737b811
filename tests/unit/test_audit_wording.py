"""Audit events in words: a policy change or a rename reads as what changed, never as a
Python dict; the organization's own log does not name the organization as a target."""

from __future__ import annotations

import uuid

from saas.audit.actions import AuditAction
from saas.audit.services import AuditEntry
from saas.audit.wording import describe_details, describe_target
from saas.db.models import AuditEvent


def entry(action: AuditAction, details: dict[str, object], target_type: str) -> AuditEntry:
    event = AuditEvent(
        action=action.value,
        organization_id=uuid.uuid4(),
        target_type=target_type,
        target_id=str(uuid.uuid4()),
        details=details,
    )
    return AuditEntry(event=event, actor=None, target_user=None)


def test_a_policy_change_names_each_setting_that_changed() -> None:
    before = {"require_mfa": False, "idle_seconds": None, "absolute_seconds": 3600}
    after = {"require_mfa": True, "idle_seconds": 900, "absolute_seconds": 3600}
    changed = entry(
        AuditAction.SECURITY_POLICY_CHANGED, {"from": before, "to": after}, "organization"
    )
    assert describe_details(changed) == (
        "require MFA: off → on; idle timeout: the platform's → 15 minutes"
    )
    assert describe_target(changed) == ""


def test_a_rename_reads_from_and_to() -> None:
    renamed = entry(
        AuditAction.ORGANIZATION_RENAMED, {"from": "Acme", "to": "Acme Corp"}, "organization"
    )
    assert describe_details(renamed) == "“Acme” → “Acme Corp”"
