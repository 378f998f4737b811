"""Why a sign-in was refused. Each reason has a name, a status and a message a person can act on.

Refusals are logged (reason only, never tokens) and shown on a clear page; none of them writes
to the session's identity or to the database.
"""

from __future__ import annotations


class LoginRefused(Exception):
    reason = "login_refused"
    status_code = 400
    title = "We could not sign you in"
    message = "Something about this sign-in was not right. Please start again."
    # The refusal page offers a sign-out button: the person signed in is the problem.
    offer_sign_out = False

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.message)
        self.detail = detail or self.message


class StateMismatch(LoginRefused):
    reason = "state_mismatch"
    message = "This sign-in link has expired or was opened in another browser. Please start again."


class ProviderError(LoginRefused):
    reason = "provider_error"
    message = "The identity provider refused the sign-in."


class CodeExchangeFailed(LoginRefused):
    reason = "code_exchange_failed"
    message = "The sign-in could not be completed with the identity provider. Please start again."


class TokenRejected(LoginRefused):
    reason = "token_rejected"
    message = "The identity provider's answer could not be verified. Please start again."


class OrganizationMismatch(LoginRefused):
    reason = "organization_mismatch"
    status_code = 403
    message = "You signed in to a different organization than the one you asked for."


class UnknownOrganization(LoginRefused):
    reason = "unknown_organization"
    status_code = 403
    message = "This organization is not available here."


class OrganizationSuspended(LoginRefused):
    reason = "organization_suspended"
    status_code = 403
    title = "Organization unavailable"
    message = "Sign-in to this organization is currently not available. Contact your administrator."


class NotAMember(LoginRefused):
    reason = "not_a_member"
    status_code = 403
    title = "No access to this organization"
    message = (
        "Your account is not a member of this organization. Ask an administrator to invite you."
    )


class RemovedFromOrganization(NotAMember):
    """An administrator removed them: just-in-time provisioning does not add them back
    (saas/members/removals.py); only a new invitation does."""

    reason = "removed_from_organization"
    title = "You were removed from this organization"
    message = "You were removed from this organization; ask an admin to invite you again."

    @classmethod
    def from_organization(cls, display_name: str) -> RemovedFromOrganization:
        return cls(f"You were removed from {display_name}; ask an admin to invite you again.")


class DeactivatedByDirectory(NotAMember):
    reason = "deactivated_by_directory"
    message = (
        "Your organization's directory has deactivated your access to this organization. "
        "Ask your IT administrator if you think this is a mistake."
    )


class SsoRequired(LoginRefused):
    reason = "sso_required"
    status_code = 403
    title = "Use your company's single sign-on"
    message = (
        "Your organization requires signing in through its single sign-on. "
        "Start again from the sign-in page with your work email."
    )


class InvitationInvalid(LoginRefused):
    reason = "invitation_invalid"
    status_code = 403
    title = "Invitation not valid"
    message = (
        "This invitation is not valid any more, or it was sent to a different email address. "
        "If its email arrived a moment ago, wait a minute, then open the link again."
    )


class InvitationExpired(InvitationInvalid):
    """Only for a holder of the link (the ticket is the secret): which case it is, and what to
    do, tells them nothing they could not learn from the email it came in."""

    reason = "invitation_expired"
    title = "This invitation has expired"
    message = "This invitation has expired. Ask an administrator of the organization to resend it."


class InvitationRevoked(InvitationInvalid):
    reason = "invitation_revoked"
    title = "This invitation was withdrawn"
    message = (
        "An administrator of the organization withdrew this invitation, so the link no longer "
        "works. If you still need access, ask them for a new one."
    )


class InvitationAlreadyUsed(InvitationInvalid):
    reason = "invitation_used"
    title = "This invitation was already accepted"
    message = "This invitation was already accepted. Sign in to open the organization."


class InvitationForSomeoneElse(InvitationInvalid):
    reason = "invitation_wrong_person"
    title = "This invitation is for someone else"
    message = "This invitation was sent to a different email address."
    offer_sign_out = True


class EmailNotVerified(LoginRefused):
    reason = "email_not_verified"
    status_code = 403
    message = "Your identity provider did not confirm your email address."


class SilentSwitchToAnotherPerson(LoginRefused):
    """A silent sign-in (`prompt=none`) answered for someone other than the person signed in
    here: the IdP's own session changed hands (another person signed in at the IdP in this
    browser, as a test sign-in does). Never taken silently: the controller asks for an
    interactive sign-in instead, so the person sees who they sign in as."""

    reason = "silent_switch_to_another_person"
    status_code = 409
    title = "Sign in again"
    message = "Your identity provider answered for someone else. Sign in again to continue."


class Auth0SessionEnded(LoginRefused):
    """The provider answered from a session its person ended on "Your sessions", before the
    revocation reached it (saas/login/ended_auth0_sessions.py). Never taken: the controller
    starts an interactive sign-in (`prompt=login`) instead."""

    reason = "auth0_session_ended"
    status_code = 409
    title = "Sign in again"
    message = "This browser was signed out. Sign in again to continue."


class MfaRequired(LoginRefused):
    reason = "mfa_required"
    status_code = 403
    title = "This organization requires multi-factor authentication"
    message = (
        "Your organization asks everyone to confirm their sign-in with a second factor, such as "
        "an authenticator app, and this sign-in did not. Start again and complete the "
        "second step when asked; if you are never asked, contact your administrator."
    )
