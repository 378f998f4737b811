"""Who acts in a tenant request, as the services bound to that request need it.

Built once per request by `saas.services` from the tenant context and the connection, so no
handler passes the organization, the acting member or the audit actor by hand (and none can
pass another organization's).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from saas.audit.services import Actor
from saas.db.models import Organization
from saas.tenancy.authority import ActingMember


@dataclass(frozen=True, slots=True)
class Caller:
    organization: Organization
    # The member whose role each write re-reads inside its own transaction; None only for the
    # system (seed, CLI, operator), which no tenant route ever is.
    authority: ActingMember | None
    # Who the audit log names, and from where.
    actor: Actor

    @property
    def organization_id(self) -> UUID:
        return self.organization.id

    @classmethod
    def system(cls, organization: Organization, actor: Actor | None = None) -> Caller:
        """The seed, the CLI, the operator console: no member whose role a write re-reads."""
        return cls(organization=organization, authority=None, actor=actor or Actor.system())
