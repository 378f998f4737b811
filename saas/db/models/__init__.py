"""All models, one per file; import as ``from saas.db import models as m``."""

from saas.db.models._enums import ConnectionStrategy, OrganizationStatus, OutboxStatus, Role
from saas.db.models.audit_event import AuditEvent
from saas.db.models.connection import EnterpriseConnection
from saas.db.models.directory import (
    DirectoryGroup,
    DirectoryGroupMember,
    DirectorySyncError,
    DirectoryUser,
    ScimToken,
)
from saas.db.models.domain import OrganizationDomain
from saas.db.models.invitation import Invitation
from saas.db.models.membership import Membership
from saas.db.models.organization import Organization
from saas.db.models.outbox_job import OutboxJob
from saas.db.models.project import Project
from saas.db.models.removed_member import RemovedMember
from saas.db.models.user import User

__all__ = (
    "AuditEvent",
    "ConnectionStrategy",
    "DirectoryGroup",
    "DirectoryGroupMember",
    "DirectorySyncError",
    "DirectoryUser",
    "EnterpriseConnection",
    "Invitation",
    "Membership",
    "Organization",
    "OrganizationDomain",
    "OrganizationStatus",
    "OutboxJob",
    "OutboxStatus",
    "Project",
    "RemovedMember",
    "Role",
    "ScimToken",
    "User",
)
