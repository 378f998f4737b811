"""An audit event in words, for the audit log and the overview's latest activity: its target
("Bob Brown (bob@acme.example)", a domain, a project) and its details ("member → admin",
"require MFA: off → on")."""

from __future__ import annotations

from typing import Any

from saas.audit.services import AuditEntry


def describe_target(entry: AuditEntry) -> str:
    """The object of the action, in words: a person, an address, a project."""
    event = entry.event
    details = event.details or {}
    if entry.target_user is not None:
        user = entry.target_user
        return f"{user.name} ({user.email})" if user.name else user.email
    if event.action == "member.left":
        return ""
    for key in ("email", "name", "domain", "connection"):
        value = details.get(key)
        if isinstance(value, str) and value:
            return value
    if event.target_type == "organization":
        return ""  # this organization's own log: the organization itself goes without saying
    if event.target_type and event.target_id:
        return f"{event.target_type} {event.target_id[:8]}"
    return ""


# The security policy's settings, as its page names them (saas/security/services.py).
POLICY_SETTINGS = {
    "require_mfa": "require MFA",
    "idle_seconds": "idle timeout",
    "absolute_seconds": "session lifetime",
}


def _policy_value(key: str, value: object) -> str:
    if key == "require_mfa":
        return "on" if value else "off"
    if isinstance(value, int) and not isinstance(value, bool):
        minutes = value // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return "the platform's"


def describe_policy_change(details: dict[str, Any]) -> str:
    """ "require MFA: off → on; idle timeout: the platform's → 15 minutes" """
    before, after = details.get("from"), details.get("to")
    if not isinstance(before, dict) or not isinstance(after, dict):
        return ""
    return "; ".join(
        f"{label}: {_policy_value(key, before.get(key))} → {_policy_value(key, after.get(key))}"
        for key, label in POLICY_SETTINGS.items()
        if before.get(key) != after.get(key)
    )


def describe_details(entry: AuditEntry) -> str:
    details = entry.event.details or {}
    action = entry.event.action
    if action == "member.role_changed":
        return f"{details.get('from', '?')} → {details.get('to', '?')}"
    if action in {"project.renamed", "organization.renamed"}:
        return f"“{details.get('from', '')}” → “{details.get('to', '')}”"
    if action == "security.policy_changed":
        return describe_policy_change(details)
    if action == "ownership.transferred":
        return "previous owner is now admin"
    if "role" in details:
        return f"as {details['role']}"
    return ""
