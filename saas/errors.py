"""Named refusals. Each maps to a clear HTML page or a JSON problem, never a 500."""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain rules refuse. `status_code` is what the client gets."""

    status_code = 400
    title = "Request refused"
    # A stable, machine-readable name for the refusal, sent as the JSON problem's `code` where
    # a client is expected to act on it (e.g. `mfa_required`: obtain a token after MFA).
    code: str | None = None

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidInput(DomainError):
    status_code = 422
    title = "Invalid input"


class NotFound(DomainError):
    status_code = 404
    title = "Not found"


class Forbidden(DomainError):
    status_code = 403
    title = "Forbidden"


class MfaRequired(Forbidden):
    """An API token of a sign-in without multi-factor authentication, for an organization whose
    security policy requires it."""

    title = "Multi-factor authentication required"
    code = "mfa_required"


class Conflict(DomainError):
    status_code = 409
    title = "Conflict"


class LastOwnerError(Conflict):
    title = "An organization needs an owner"

    def __init__(self) -> None:
        super().__init__("This is the organization's last owner. Make someone else an owner first.")
