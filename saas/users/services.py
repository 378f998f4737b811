from __future__ import annotations

import datetime

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService

from saas.config import Settings
from saas.db.models import User
from saas.db.unique import insert_unless_taken
from saas.organizations.domains import normalize_email


def may_become_operator(settings: Settings, *, sub: str, email: str, email_verified: bool) -> bool:
    """PLATFORM_OPERATOR_EMAILS counts only for a verified address from a platform-owned
    connection: a tenant's own IdP could otherwise claim an operator's email."""
    connection = sub.partition("|")[0]
    return (
        email_verified
        and connection in settings.platform_operator_connections
        and normalize_email(email) in settings.platform_operator_emails
    )


class UserRepository(SQLAlchemyAsyncRepository[User]):
    model_type = User


class UserService(SQLAlchemyAsyncRepositoryService[User, UserRepository]):
    repository_type = UserRepository

    async def upsert_by_sub(
        self,
        *,
        sub: str,
        email: str,
        name: str = "",
        picture: str | None = None,
        grant_platform_operator: bool = False,
        signed_in: bool = False,
    ) -> User:
        """Identity is the Auth0 `sub`; profile fields follow what the IdP says last."""
        email = normalize_email(email)
        user = await self.repository.get_one_or_none(sub=sub)
        if user is None:
            # One person's first sign-in from two tabs: both find no user. The database lets
            # one INSERT through; the other waits for it, inserts nothing, and reads that row.
            user = await insert_unless_taken(
                self.repository.session, User, {"sub": sub, "email": email}, unique=("sub",)
            ) or await self.repository.get_one(sub=sub)
        user.email = email
        user.name = name or user.name or email.partition("@")[0]
        user.picture = picture
        if grant_platform_operator:
            # Granted from configuration (see `may_become_operator`), never revoked implicitly.
            user.is_platform_operator = True
        if signed_in:
            user.last_login_at = datetime.datetime.now(datetime.UTC)
        return await self.repository.update(user, auto_commit=False)
