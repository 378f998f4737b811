from __future__ import annotations

import datetime

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService

from saas.db.models import User
from saas.organizations.domains import normalize_email


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
        platform_operator_emails: frozenset[str] = frozenset(),
        signed_in: bool = False,
    ) -> User:
        """Identity is the Auth0 `sub`; profile fields follow what the IdP says last."""
        email = normalize_email(email)
        user = await self.repository.get_one_or_none(sub=sub)
        if user is None:
            user = User(sub=sub, email=email)
            user = await self.repository.add(user, auto_commit=False)
        user.email = email
        user.name = name or user.name or email.partition("@")[0]
        user.picture = picture
        if email in platform_operator_emails:
            # Operator status is granted from configuration, never revoked implicitly here:
            # `saas operators` manages removal explicitly.
            user.is_platform_operator = True
        if signed_in:
            user.last_login_at = datetime.datetime.now(datetime.UTC)
        return await self.repository.update(user, auto_commit=False)
