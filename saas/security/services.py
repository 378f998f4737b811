"""An organization's security policy, set by its owners: require multi-factor sign-in, and end
its sessions sooner than the platform does.

- Timeouts are whole minutes on the form and seconds in the row; blank is the platform's. Each
  must be shorter than or equal to the platform's own (Settings), idle within absolute; the
  database holds the fixed bounds too (CHECK constraints, migration 0009_security_policy).
- Enforcement: `effective_timeouts` is read by the tenant resolver on every request to the
  organization (saas.tenancy.resolver); the MFA requirement by sign-in (saas.login.authorize,
  saas.login.callback) and by the resolver for a session opened without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.audit.actions import AuditAction
from saas.audit.services import AuditService
from saas.config import Settings
from saas.db.models import Organization
from saas.errors import InvalidInput
from saas.tenancy.authority import acting_role
from saas.tenancy.caller import Caller
from saas.tenancy.permissions import Permission

# The shortest a policy may name, as the database's CHECK constraints hold it.
MIN_IDLE_SECONDS = 60
MIN_ABSOLUTE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class SecurityPolicy:
    require_mfa: bool
    idle_seconds: int | None
    absolute_seconds: int | None


def effective_timeouts(organization: Organization, settings: Settings) -> tuple[int, int]:
    """(idle, absolute) seconds for a session in the organization: the shorter of its policy
    and the platform's, so lowering the platform's later shortens every organization's too."""
    idle = settings.session_idle_timeout_seconds
    absolute = settings.session_absolute_timeout_seconds
    if organization.session_idle_timeout_seconds is not None:
        idle = min(idle, organization.session_idle_timeout_seconds)
    if organization.session_absolute_timeout_seconds is not None:
        absolute = min(absolute, organization.session_absolute_timeout_seconds)
    return idle, absolute


def _minutes(value: str, *, field: str, label: str) -> int | None:
    text = value.strip()
    if not text:
        return None
    if not text.isdecimal() or len(text) > 7:
        raise InvalidInput(f"{label}: enter a whole number of minutes, like 30.", field=field)
    return int(text) * 60


def parse_policy(
    *, require_mfa: bool, idle_minutes: str, absolute_minutes: str, settings: Settings
) -> SecurityPolicy:
    """The policy the form describes, or InvalidInput naming the field that is wrong."""
    idle = _minutes(idle_minutes, field="idle_minutes", label="Idle timeout")
    absolute = _minutes(absolute_minutes, field="absolute_minutes", label="Session lifetime")
    platform_idle = settings.session_idle_timeout_seconds
    platform_absolute = settings.session_absolute_timeout_seconds
    if idle is not None:
        if idle < MIN_IDLE_SECONDS:
            raise InvalidInput("Idle timeout: at least 1 minute.", field="idle_minutes")
        if idle > platform_idle:
            raise InvalidInput(
                f"Idle timeout: at most {platform_idle // 60} minutes, the platform's own.",
                field="idle_minutes",
            )
    if absolute is not None:
        if absolute < MIN_ABSOLUTE_SECONDS:
            raise InvalidInput("Session lifetime: at least 5 minutes.", field="absolute_minutes")
        if absolute > platform_absolute:
            raise InvalidInput(
                f"Session lifetime: at most {platform_absolute // 60} minutes, the platform's own.",
                field="absolute_minutes",
            )
    if idle is not None and absolute is not None and idle > absolute:
        raise InvalidInput(
            "Idle timeout: no longer than the session lifetime.", field="idle_minutes"
        )
    return SecurityPolicy(require_mfa=require_mfa, idle_seconds=idle, absolute_seconds=absolute)


def _described(policy: SecurityPolicy) -> dict[str, object]:
    return {
        "require_mfa": policy.require_mfa,
        "idle_seconds": policy.idle_seconds,
        "absolute_seconds": policy.absolute_seconds,
    }


class SecurityPolicyService:
    """The security policy of the caller's organization, changed by the caller."""

    def __init__(
        self, *, session: AsyncSession | async_scoped_session[AsyncSession], caller: Caller
    ) -> None:
        self.session = session
        self.caller = caller

    async def save(self, policy: SecurityPolicy) -> Organization:
        """Write the policy, with the owner's authority re-read in this transaction."""
        organization_id = self.caller.organization_id
        await acting_role(
            self.session,
            organization_id,
            self.caller.authority,
            Permission.OWNERSHIP,
            lock_organization=True,
        )
        organization = await self.session.get_one(Organization, organization_id)
        await self.session.refresh(organization)
        before = SecurityPolicy(
            require_mfa=organization.require_mfa,
            idle_seconds=organization.session_idle_timeout_seconds,
            absolute_seconds=organization.session_absolute_timeout_seconds,
        )
        if before == policy:
            return organization
        organization.require_mfa = policy.require_mfa
        organization.session_idle_timeout_seconds = policy.idle_seconds
        organization.session_absolute_timeout_seconds = policy.absolute_seconds
        await self.session.flush()
        await AuditService(session=self.session).record(
            AuditAction.SECURITY_POLICY_CHANGED,
            actor=self.caller.actor,
            organization_id=organization_id,
            target_type="organization",
            target_id=organization_id,
            details={"from": _described(before), "to": _described(policy)},
        )
        return organization
