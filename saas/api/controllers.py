"""The JSON API under /api/v1/orgs/{org}: members, invitations, projects.

`{org}` is the organization's slug or its Auth0 organization id (`org_...`). Every route asks
for a permission; the bearer token's `org_id` must be the path's organization, and both the
token's `permissions` and the caller's live membership must allow the action.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Annotated, TypeVar
from uuid import UUID

from advanced_alchemy.service import OffsetPagination
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from saas.api.schemas import (
    InvitationIn,
    InvitationOut,
    Limit,
    MemberOut,
    MemberPageOut,
    Offset,
    OrganizationOut,
    PageCursor,
    ProjectIn,
    ProjectOut,
    RoleChange,
    Search,
)
from saas.db.keyset import Cursor, InvalidCursor
from saas.db.models import Invitation, Project
from saas.errors import InvalidInput
from saas.invitations.services import TenantInvitations
from saas.members.services import (
    MATCH_COUNT_CAP,
    MEMBER_SORT_KEYS,
    MembershipFields,
    PageStart,
    TenantMembers,
    UserFields,
)
from saas.projects.services import ProjectService
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.web.input import SINGLE_LINE_PATTERN

ModelT = TypeVar("ModelT")
OutT = TypeVar("OutT")
SortKey = Annotated[
    str,
    QueryParameter(
        max_length=32,
        pattern=SINGLE_LINE_PATTERN,
        description=f"One of {', '.join(MEMBER_SORT_KEYS)}.",
    ),
]


def _page(
    page: OffsetPagination[ModelT], shape: Callable[[ModelT], OutT]
) -> OffsetPagination[OutT]:
    """A service's page of rows as the API's page of their shapes."""
    return OffsetPagination(
        items=[shape(row) for row in page.items],
        limit=page.limit,
        offset=page.offset,
        total=page.total,
    )


def _member(membership: MembershipFields, user: UserFields) -> MemberOut:
    return MemberOut(
        id=membership.id,
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=membership.role,
        joined_at=membership.created_at,
        last_login_at=user.last_login_at,
    )


def _invitation(invitation: Invitation) -> InvitationOut:
    return InvitationOut(
        id=invitation.id,
        email=invitation.email,
        role=invitation.role,
        status=invitation.status(datetime.datetime.now(datetime.UTC)),
        expires_at=invitation.expires_at,
        created_at=invitation.created_at,
    )


def _project(project: Project) -> ProjectOut:
    return ProjectOut(
        id=project.id,
        name=project.name,
        created_at=project.created_at,
        updated_at=project.updated_at,
    )


class OrganizationApi(Controller):
    path = "/"
    tags = ["organizations"]

    @get("/", guards=[requires(Permission.ORG_READ)], summary="The organization")
    async def get_organization(self, tenant: NamedDependency[TenantContext]) -> OrganizationOut:
        org = tenant.organization
        return OrganizationOut(
            id=org.id,
            slug=org.slug,
            auth0_org_id=org.auth0_org_id,
            display_name=org.display_name,
            status=org.status,
            require_sso=org.require_sso,
            jit_provisioning=org.jit_provisioning,
            default_role=org.default_role,
        )


class MembersApi(Controller):
    path = "/members"
    tags = ["members"]

    @get("/", guards=[requires(Permission.MEMBERS_READ)], summary="List members")
    async def list_members(
        self,
        members: NamedDependency[TenantMembers],
        q: Search = None,
        sort: SortKey = "name",
        descending: FromQuery[bool] = False,
        limit: Limit = 25,
        after: PageCursor = None,
        before: PageCursor = None,
    ) -> MemberPageOut:
        """Cursor-paginated: every page costs the same, however deep into a large organization."""
        if sort not in MEMBER_SORT_KEYS:
            raise InvalidInput(
                f"Unknown sort {sort!r}; choose one of {', '.join(MEMBER_SORT_KEYS)}", field="sort"
            )
        if after and before:
            raise InvalidInput("Give `after` or `before`, not both.", field="after")
        search = (q or "").strip() or None
        try:
            page, total = await members.listing(
                search=search,
                sort=sort,
                descending=descending,
                limit=limit,
                start=PageStart.AFTER if after else PageStart.BEFORE if before else PageStart.FIRST,
                cursor=Cursor.decode(after or before or "") if after or before else None,
            )
        except InvalidCursor as error:
            raise InvalidInput(str(error), field="after" if after else "before") from None
        return MemberPageOut(
            items=[_member(m, u) for m, u in page.rows],
            limit=limit,
            total=total,
            total_is_lower_bound=search is not None and total > MATCH_COUNT_CAP,
            next_cursor=page.next_cursor.encode() if page.next_cursor else None,
            previous_cursor=page.previous_cursor.encode() if page.previous_cursor else None,
        )

    @patch(
        "/{member_id:uuid}", guards=[requires(Permission.MEMBERS_MANAGE)], summary="Change a role"
    )
    async def change_role(
        self,
        members: NamedDependency[TenantMembers],
        member_id: FromPath[UUID],
        data: JSONBody[RoleChange],
    ) -> MemberOut:
        membership = await members.change_role(member_id, data.role)
        return _member(membership, await members.user_of(membership))

    @delete(
        "/{member_id:uuid}",
        guards=[requires(Permission.MEMBERS_MANAGE)],
        status_code=HTTP_204_NO_CONTENT,
        summary="Remove a member",
    )
    async def remove_member(
        self, members: NamedDependency[TenantMembers], member_id: FromPath[UUID]
    ) -> None:
        await members.remove(member_id)


class InvitationsApi(Controller):
    path = "/invitations"
    tags = ["invitations"]

    @get("/", guards=[requires(Permission.MEMBERS_INVITE)], summary="List open invitations")
    async def list_invitations(
        self,
        invitations: NamedDependency[TenantInvitations],
        limit: Limit = 25,
        offset: Offset = 0,
    ) -> OffsetPagination[InvitationOut]:
        page = await invitations.page(open_only=True, limit=limit, offset=offset)
        return _page(page, _invitation)

    @post("/", guards=[requires(Permission.MEMBERS_INVITE)], summary="Invite someone")
    async def create_invitation(
        self, invitations: NamedDependency[TenantInvitations], data: JSONBody[InvitationIn]
    ) -> InvitationOut:
        invitation, _ticket = await invitations.invite(data.email, data.role)
        return _invitation(invitation)

    @delete(
        "/{invitation_id:uuid}",
        guards=[requires(Permission.MEMBERS_INVITE)],
        status_code=HTTP_204_NO_CONTENT,
        summary="Revoke an invitation",
    )
    async def revoke_invitation(
        self, invitations: NamedDependency[TenantInvitations], invitation_id: FromPath[UUID]
    ) -> None:
        await invitations.revoke(invitation_id)


class ProjectsApi(Controller):
    path = "/projects"
    tags = ["projects"]

    @get("/", guards=[requires(Permission.ORG_READ)], summary="List projects")
    async def list_projects(
        self,
        projects: NamedDependency[ProjectService],
        q: Search = None,
        limit: Limit = 25,
        offset: Offset = 0,
    ) -> OffsetPagination[ProjectOut]:
        page = await projects.page(search=q, limit=limit, offset=offset)
        return _page(page, _project)

    @get("/{project_id:uuid}", guards=[requires(Permission.ORG_READ)], summary="Get a project")
    async def get_project(
        self, projects: NamedDependency[ProjectService], project_id: FromPath[UUID]
    ) -> ProjectOut:
        return _project(await projects.get_project(project_id))

    @post("/", guards=[requires(Permission.PROJECTS_WRITE)], summary="Create a project")
    async def create_project(
        self, projects: NamedDependency[ProjectService], data: JSONBody[ProjectIn]
    ) -> ProjectOut:
        return _project(await projects.create_project(data.name))

    @patch(
        "/{project_id:uuid}",
        guards=[requires(Permission.PROJECTS_WRITE)],
        summary="Rename a project",
    )
    async def rename_project(
        self,
        projects: NamedDependency[ProjectService],
        project_id: FromPath[UUID],
        data: JSONBody[ProjectIn],
    ) -> ProjectOut:
        return _project(await projects.rename_project(project_id, data.name))

    @delete(
        "/{project_id:uuid}",
        guards=[requires(Permission.PROJECTS_WRITE)],
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a project",
    )
    async def delete_project(
        self, projects: NamedDependency[ProjectService], project_id: FromPath[UUID]
    ) -> None:
        await projects.delete_project(project_id)
