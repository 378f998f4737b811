"""Every action the audit log can record, with the words the log shows for it.

One enumeration: services pass an `AuditAction` to `AuditService.record`, the log page reads
its labels and offers its members as filters, so an action cannot be written without a label.
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    """The stored value is the dotted name; `label` reads as "Alice <label> Bob"."""

    label: str

    def __new__(cls, value: str, label: str) -> AuditAction:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    AUTH_LOGIN = "auth.login", "signed in"
    ORGANIZATION_CREATED = "organization.created", "created the organization"
    ORGANIZATION_SUSPENDED = "organization.suspended", "suspended the organization"
    ORGANIZATION_REACTIVATED = "organization.reactivated", "reactivated the organization"
    ORGANIZATION_RENAMED = "organization.renamed", "renamed the organization"
    DOMAIN_ADDED = "domain.added", "added domain"
    DOMAIN_VERIFIED = "domain.verified", "verified domain"
    DOMAIN_REMOVED = "domain.removed", "removed domain"
    CONNECTION_ADDED = "connection.added", "added connection"
    SSO_CREATED = "sso.created", "set up single sign-on with"
    SSO_UPDATED = "sso.updated", "changed the single sign-on settings of"
    SSO_DELETED = "sso.deleted", "removed single sign-on with"
    MEMBER_ADDED = "member.added", "added member"
    MEMBER_ROLE_CHANGED = "member.role_changed", "changed the role of"
    MEMBER_REMOVED = "member.removed", "removed member"
    MEMBER_LEFT = "member.left", "left the organization"
    OWNERSHIP_TRANSFERRED = "ownership.transferred", "transferred ownership to"
    INVITATION_CREATED = "invitation.created", "invited"
    INVITATION_RESENT = "invitation.resent", "resent the invitation to"
    INVITATION_REVOKED = "invitation.revoked", "revoked the invitation to"
    INVITATION_ACCEPTED = "invitation.accepted", "accepted the invitation for"
    SESSION_ENDED = "session.ended", "signed out a session of"
    SESSIONS_ENDED_ACCESS = "session.access_ended", "ended the sessions in the organization of"
    SECURITY_POLICY_CHANGED = "security.policy_changed", "changed the security policy"
    SCIM_TOKEN_CREATED = "scim.token_created", "created the SCIM token"
    SCIM_TOKEN_ROTATED = "scim.token_rotated", "rotated the SCIM token"
    SCIM_TOKEN_REVOKED = "scim.token_revoked", "revoked the SCIM token"
    DIRECTORY_GROUP_MAPPED = "directory.group_mapped", "mapped a directory group to a role"
    DIRECTORY_USER_PROVISIONED = "directory.user_provisioned", "provisioned"
    DIRECTORY_USER_UPDATED = "directory.user_updated", "updated the directory entry of"
    DIRECTORY_USER_DEACTIVATED = "directory.user_deactivated", "deactivated"
    DIRECTORY_USER_REACTIVATED = "directory.user_reactivated", "reactivated"
    DIRECTORY_USER_DELETED = "directory.user_deleted", "deleted the directory entry of"
    DIRECTORY_GROUP_CREATED = "directory.group_created", "created directory group"
    DIRECTORY_GROUP_UPDATED = "directory.group_updated", "changed directory group"
    DIRECTORY_GROUP_DELETED = "directory.group_deleted", "deleted directory group"
    DIRECTORY_CHANGE_REFUSED = "directory.change_refused", "was refused a directory change for"
    PROJECT_CREATED = "project.created", "created project"
    PROJECT_RENAMED = "project.renamed", "renamed project"
    PROJECT_DELETED = "project.deleted", "deleted project"

    @classmethod
    def parse(cls, value: str | None) -> AuditAction | None:
        """The action a filter names, or None for an empty or unknown one."""
        return next((action for action in cls if action.value == value), None)
