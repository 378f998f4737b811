"""Projects: the sample tenant-scoped resource. The pattern to copy for your own tenant data:
a TenantScopedRepository, a service bound to the request's caller (its organization, its acting
member and the audit actor; `saas.services` builds it per request), the writer's permission
re-read inside the write's transaction, audit in the same transaction, and names validated
here rather than in controllers."""

from __future__ import annotations

from uuid import UUID

from advanced_alchemy.exceptions import NotFoundError
from advanced_alchemy.filters import OrderBy, StatementFilter
from advanced_alchemy.service import OffsetPagination, SQLAlchemyAsyncRepositoryService
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.audit.actions import AuditAction
from saas.audit.services import AuditService
from saas.db.lists import offset_page, text_search
from saas.db.models import Project
from saas.db.tenant_repository import TenantScopedRepository
from saas.db.unique import insert_unless_taken
from saas.errors import Conflict, InvalidInput, NotFound
from saas.tenancy.authority import acting_role
from saas.tenancy.caller import Caller
from saas.tenancy.permissions import Permission

MAX_NAME = 120


class ProjectRepository(TenantScopedRepository[Project]):
    model_type = Project


def clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidInput("Give the project a name.", field="name")
    if len(cleaned) > MAX_NAME:
        raise InvalidInput(f"Use at most {MAX_NAME} characters.", field="name")
    return cleaned


class ProjectService(SQLAlchemyAsyncRepositoryService[Project, ProjectRepository]):
    """The projects of the caller's organization, changed by the caller."""

    repository_type = ProjectRepository

    def __init__(
        self, *, session: AsyncSession | async_scoped_session[AsyncSession], caller: Caller
    ) -> None:
        super().__init__(session=session, organization_id=caller.organization_id)
        self.caller = caller

    @property
    def organization_id(self) -> UUID:
        return self.caller.organization_id

    async def page(
        self, *, search: str | None, limit: int, offset: int
    ) -> OffsetPagination[Project]:
        """By name, ignoring case (ties by id), searched by name."""
        filters: list[StatementFilter] = [OrderBy(func.lower(Project.name)), OrderBy(Project.id)]
        if search:
            filters.append(text_search("name", search))
        return await offset_page(self.repository, *filters, limit=limit, offset=offset)

    async def get_project(self, project_id: UUID) -> Project:
        try:
            return await self.repository.get(project_id)
        except NotFoundError:
            raise NotFound("No such project in this organization.") from None

    @staticmethod
    def _taken(name: str) -> Conflict:
        return Conflict(f"A project named {name!r} exists already.", field="name")

    async def _ensure_unique(self, name: str, exclude: UUID | None = None) -> None:
        # The database's lower(), as the unique index has it (SQLite folds only ASCII letters).
        statement = self.repository.statement.where(func.lower(Project.name) == func.lower(name))
        if exclude is not None:
            statement = statement.where(Project.id != exclude)
        if (await self.repository.session.execute(statement.limit(1))).first() is not None:
            raise self._taken(name)

    async def _authorize(self) -> None:
        await acting_role(
            self.repository.session,
            self.organization_id,
            self.caller.authority,
            Permission.PROJECTS_WRITE,
        )

    async def create_project(self, name: str) -> Project:
        name = clean_name(name)
        await self._authorize()
        await self._ensure_unique(name)
        # A concurrent request may create the same name after the check above; the database's
        # constraint decides, and the loser gets the same answer as if it had come second.
        project = await insert_unless_taken(
            self.repository.session,
            Project,
            {
                "organization_id": self.organization_id,
                "name": name,
                "created_by_id": self.caller.actor.user_id,
            },
            # The expressions of the unique index uq_projects_org_lower_name.
            unique=["organization_id", func.lower(Project.name)],
        )
        if project is None:
            raise self._taken(name)
        await self._audit(AuditAction.PROJECT_CREATED, project, {"name": name})
        return project

    async def rename_project(self, project_id: UUID, name: str) -> Project:
        await self._authorize()
        project = await self.get_project(project_id)
        name = clean_name(name)
        await self._ensure_unique(name, exclude=project.id)
        old = project.name
        project.name = name
        project = await self.repository.update(project, auto_commit=False)
        await self._audit(AuditAction.PROJECT_RENAMED, project, {"from": old, "to": name})
        return project

    async def delete_project(self, project_id: UUID) -> Project:
        await self._authorize()
        project = await self.get_project(project_id)
        await self.repository.delete(project.id, auto_commit=False)
        await self._audit(AuditAction.PROJECT_DELETED, project, {"name": project.name})
        return project

    async def _audit(self, action: AuditAction, project: Project, details: dict[str, str]) -> None:
        await AuditService(session=self.repository.session).record(
            action,
            actor=self.caller.actor,
            organization_id=self.organization_id,
            target_type="project",
            target_id=project.id,
            details=details,
        )
