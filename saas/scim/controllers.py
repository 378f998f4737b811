"""Directory sync: the SCIM 2.0 service provider at /scim/v2/, and the "Directory sync"
settings page where an organization's admins manage its tokens and group -> role mappings.

The SCIM router is not a tenant router: the organization is the one the bearer token belongs
to, found by the token's hash, never by anything in the path or the body. Every refusal is a
SCIM error (`application/scim+json` with `scimType`, saas/web/errors.py), and every refusal of a
request with a valid token is also kept for the settings page ("recent errors"), written in a
transaction of its own after the request's own has rolled back.
"""

from __future__ import annotations

import datetime
import math
from typing import Annotated, Any
from uuid import UUID

import structlog
from advanced_alchemy.extensions.litestar._utils import get_aa_scope_state
from litestar import Controller, MediaType, Request, Response, Router, delete, get, patch, post, put
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from msgspec import Struct
from pydantic import ValidationError
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    Error,
    ETag,
    Filter,
    Group,
    GroupMembership,
    Meta,
    NotFoundException,
    NotImplementedException,
    Pagination,
    Patch,
    PatchOp,
    ResourceType,
    ResponseParameters,
    SCIMException,
    ScimProvider,
    SearchRequest,
    ServiceProviderConfig,
    Sort,
    UnauthorizedException,
    User,
)
from sqlalchemy import delete as sql_delete
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.actions import AuditAction
from saas.audit.services import Actor, AuditService
from saas.config import Settings
from saas.db.models import (
    DirectorySyncError,
    DirectoryUser,
    Organization,
    OrganizationStatus,
    ScimToken,
)
from saas.login.sessions import RATE_LIMIT_STORE
from saas.scim.services import (
    DEFAULT_PAGE,
    MAX_PAGE,
    POLICY,
    DirectoryRefused,
    DirectoryService,
    ScimUser,
)
from saas.scim.tokens import DirectorySettingsService, IssuedToken, hash_token, parse_mapped_role
from saas.stores import WindowCounter
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission, Role
from saas.tenancy.policy import ROLES_BY_RANK
from saas.tenancy.routers import PRIVATE, PRIVATE_OPT, form_post
from saas.web.errors import SCIM_ERROR_STATE, SCIM_MEDIA_TYPE, SCIM_OPT, scim_error_response
from saas.web.input import SingleLine
from saas.web.pages import page_context
from saas.web.refusals import FormErrors, redirect_with_flash

logger = structlog.get_logger("saas.scim")

BASE_PATH = "/scim/v2"
BINDING_STATE = "saas.scim.binding"
REFUSAL_STATE = "saas.scim.refusal"
RATE_WINDOW_SECONDS = 60
# A token's last use is written at most this often: a 10,000-person push is not 10,000 writes
# of one row that every request would otherwise queue behind.
LAST_USED_PRECISION = datetime.timedelta(seconds=5)
# A SCIM request's body: what 1,000 group members or PATCH operations take, with room to spare.
MAX_BODY_BYTES = 1_000_000
# Refusals kept for the settings page.
ERROR_RETENTION = datetime.timedelta(days=30)


def _service_provider_config(settings: Settings) -> ServiceProviderConfig:
    return ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_PAGE),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        pagination=Pagination(
            index=True, cursor=False, default_page_size=DEFAULT_PAGE, max_page_size=MAX_PAGE
        ),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="OAuth Bearer Token",
                description="The organization's SCIM token, from its Directory sync settings.",
                primary=True,
            )
        ],
    )


PROVIDER = ScimProvider(
    models=[User, EnterpriseUser, Group],
    resource_types=[ResourceType.from_resource(ScimUser), ResourceType.from_resource(Group)],
)


def scim(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(content, status_code=status_code, media_type=SCIM_MEDIA_TYPE, headers=headers)


# ---- authentication, rate limit ------------------------------------------------------------


class _Binding(Struct):
    organization_id: UUID
    token_id: UUID
    token_name: str


async def provide_directory(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    settings: NamedDependency[Settings],
) -> DirectoryService:
    """The directory of the organization whose token the request carries, or a 401.

    The token is found, and its last use written, in a short transaction of its own before the
    request's begins: the request never holds a lock on the token's row, and on SQLite the
    request's transaction starts after that write (not on a snapshot older than it)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise UnauthorizedException(detail="Send the organization's SCIM token as a bearer token.")
    db_config = request.app.state["db_config"]
    async with db_config.get_session() as own:
        found = (
            await own.execute(
                select(ScimToken.id, ScimToken.name, ScimToken.revoked_at, Organization.status)
                .join(Organization, Organization.id == ScimToken.organization_id)
                .where(ScimToken.token_hash == hash_token(credentials.strip()))
            )
        ).first()
        if found is None or found.revoked_at is not None:
            raise UnauthorizedException(detail="This SCIM token is not valid, or was revoked.")
        if found.status != OrganizationStatus.ACTIVE.value:
            raise UnauthorizedException(detail="This organization is suspended.")
        now = datetime.datetime.now(datetime.UTC)
        await own.execute(
            update(ScimToken)
            .where(
                ScimToken.id == found.id,
                or_(
                    ScimToken.last_used_at.is_(None),
                    ScimToken.last_used_at < now - LAST_USED_PRECISION,
                ),
            )
            .values(last_used_at=now)
        )
        await own.commit()
    token_id, token_name = found.id, found.name
    organization = (
        await db_session.execute(
            select(Organization)
            .join(ScimToken, ScimToken.organization_id == Organization.id)
            .where(ScimToken.id == token_id, ScimToken.revoked_at.is_(None))
        )
    ).scalar_one_or_none()
    if organization is None:  # revoked in between
        raise UnauthorizedException(detail="This SCIM token is not valid, or was revoked.")
    request.state[BINDING_STATE] = _Binding(organization.id, token_id, token_name)
    counter = request.app.stores.get(RATE_LIMIT_STORE)
    if isinstance(counter, WindowCounter):
        counted = await counter.hit(f"scim:{token_id}", RATE_WINDOW_SECONDS)
        limit = settings.scim_rate_limit_per_minute
        if counted.count > limit:
            retry = max(1, math.ceil(counted.resets_in))
            raise _RateLimited(retry)
    actor = Actor(
        user_id=None,
        ip_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        label=f"directory sync ({token_name})",
    )
    return DirectoryService(db_session, organization, actor, token_id=token_id)


class _RateLimited(SCIMException):
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            detail=f"Too many requests for this SCIM token; retry in {retry_after} seconds."
        )
        self.retry_after = retry_after


def handle_scim_exception(request: Request[Any, Any, Any], exc: SCIMException) -> Response[Any]:
    headers = {}
    if isinstance(exc, _RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, UnauthorizedException):
        headers["WWW-Authenticate"] = 'Bearer realm="scim"'
    return scim_error_response(
        request, exc.status, exc.detail, scim_type=exc.scim_type or None, headers=headers
    )


def handle_refused(request: Request[Any, Any, Any], exc: DirectoryRefused) -> Response[Any]:
    request.state[REFUSAL_STATE] = exc
    return scim_error_response(request, exc.status, exc.detail, scim_type=None)


def handle_too_large(request: Request[Any, Any, Any], exc: RequestEntityTooLarge) -> Response[Any]:
    return scim_error_response(
        request,
        413,
        f"The request body is over {MAX_BODY_BYTES:,} bytes: send the change in smaller batches.",
        scim_type=None,
    )


def record_refusals(app: Any) -> Any:
    """Router middleware: a refusal of a request with a valid token is kept for the settings
    page, and a refused directory change is audited, in a transaction of their own once the
    request's own has rolled back (its writes are not kept: saas/web/commit.py)."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        async def send_recording(message: Any) -> None:
            # Not 429s: a client over its limit would otherwise write a row per refusal.
            if (
                message["type"] == "http.response.start"
                and message["status"] >= 400
                and (message["status"] != 429)
            ):
                state = scope.get("state", {})
                binding = state.get(BINDING_STATE)
                if isinstance(binding, _Binding):
                    try:
                        await _record(scope, binding, message["status"], state)
                    except Exception:  # the answer still goes out; the log says why
                        logger.exception("scim_refusal_not_recorded")
            await send(message)

        await app(scope, receive, send_recording)

    return middleware


async def _record(scope: Any, binding: _Binding, status: int, state: dict[str, Any]) -> None:
    litestar_app = scope["litestar_app"]
    db_config = litestar_app.state["db_config"]
    request_session: AsyncSession | None = get_aa_scope_state(scope, db_config.session_scope_key)
    if request_session is not None:
        await request_session.rollback()  # let go of SQLite's write lock, if it was taken
    scim_type, detail = state.get(SCIM_ERROR_STATE, (None, ""))
    async with db_config.get_session() as session:
        now = datetime.datetime.now(datetime.UTC)
        session.add(
            DirectorySyncError(
                organization_id=binding.organization_id,
                token_id=binding.token_id,
                method=str(scope.get("method", ""))[:8],
                path=str(scope.get("path", ""))[:255],
                status=status,
                scim_type=(scim_type or None) and str(scim_type)[:32],
                detail=str(detail)[:500],
            )
        )
        await session.execute(
            sql_delete(DirectorySyncError).where(
                DirectorySyncError.organization_id == binding.organization_id,
                DirectorySyncError.created_at < now - ERROR_RETENTION,
            )
        )
        refusal = state.get(REFUSAL_STATE)
        if isinstance(refusal, DirectoryRefused):
            await AuditService(session=session).record(
                AuditAction.DIRECTORY_CHANGE_REFUSED,
                actor=Actor(user_id=None, label=f"directory sync ({binding.token_name})"),
                organization_id=binding.organization_id,
                target_type="user",
                target_id=refusal.user_id,
                details={"reason": refusal.reason, "change": refusal.change},
            )
        await session.commit()


# ---- parsing and rendering ------------------------------------------------------------------


async def _parse(request: Request[Any, Any, Any], model: Any, context: Context) -> Any:
    body = await request.body()
    try:
        with POLICY:
            return model.model_validate_json(body or b"{}", scim_ctx=context)
    except ValidationError as error:
        errors = Error.from_validation_errors(error)
        first = errors[0] if errors else Error(status=400, scim_type="invalidSyntax")
        raise SCIMException.from_error(first) from None


async def _search(request: Request[Any, Any, Any], model: Any) -> SearchRequest[Any]:
    """A POST /.search body (RFC 7644 §3.4.3). Its filter is checked again, as a query's is,
    where the list reads it."""
    return await _parse(request, SearchRequest[model], Context.SEARCH_REQUEST)


def _selection(search: SearchRequest[Any]) -> ResponseParameters[Any] | None:
    if not search.attributes and not search.excluded_attributes:
        return None
    return ResponseParameters[Any](
        attributes=search.attributes, excluded_attributes=search.excluded_attributes
    )


def _int_param(request: Request[Any, Any, Any], name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise SCIMException.from_error(
            Error(status=400, scim_type="invalidValue", detail=f"{name} must be an integer.")
        ) from None


def _response_parameters(request: Request[Any, Any, Any], model: Any) -> ResponseParameters[Any]:
    try:
        return ResponseParameters[model].model_validate(
            {
                "attributes": request.query_params.get("attributes") or None,
                "excludedAttributes": request.query_params.get("excludedAttributes") or None,
            }
        )
    except ValidationError:
        raise SCIMException.from_error(
            Error(status=400, scim_type="invalidPath", detail="Unknown attribute requested.")
        ) from None


def _location(settings: Settings, kind: str, resource_id: Any) -> str:
    return f"{settings.app_base_url}{BASE_PATH}/{kind}/{resource_id}"


def _dump(
    model: Any, parameters: ResponseParameters[Any] | None, context: Context
) -> dict[str, Any]:
    return model.model_dump(scim_ctx=context, response_parameters=parameters)


async def _user_document(
    directory: DirectoryService,
    settings: Settings,
    rows: list[DirectoryUser],
    parameters: ResponseParameters[Any] | None,
    context: Context = Context.RESOURCE_QUERY_RESPONSE,
) -> list[dict[str, Any]]:
    groups = await directory.groups_of(rows)
    documents = []
    for row in rows:
        model = directory.model_of(row)
        model.meta = Meta(
            resource_type="User",
            created=row.created_at,
            last_modified=row.updated_at,
            location=_location(settings, "Users", row.id),
        )
        model.groups = [
            GroupMembership.model_validate(
                {
                    "value": str(g.id),
                    "display": g.display_name,
                    "$ref": _location(settings, "Groups", g.id),
                }
            )
            for g in groups[row.id]
        ] or None
        documents.append(_dump(model, parameters, context))
    return documents


async def _group_document(
    directory: DirectoryService,
    settings: Settings,
    rows: list[Any],
    parameters: ResponseParameters[Any] | None,
    context: Context = Context.RESOURCE_QUERY_RESPONSE,
) -> list[dict[str, Any]]:
    excluded = request_excludes_members(parameters)
    members = {row.id: [] for row in rows} if excluded else await directory.members_of(rows)
    documents = []
    for row in rows:
        model = directory.group_model(
            row, members[row.id], lambda user_id: _location(settings, "Users", user_id)
        )
        model.meta = Meta(
            resource_type="Group",
            created=row.created_at,
            last_modified=row.updated_at,
            location=_location(settings, "Groups", row.id),
        )
        documents.append(_dump(model, parameters, context))
    return documents


def request_excludes_members(parameters: ResponseParameters[Any] | None) -> bool:
    if parameters is None:
        return False
    excluded = [str(p).casefold() for p in parameters.excluded_attributes or []]
    wanted = [str(p).casefold() for p in parameters.attributes or []]
    return "members" in excluded or (
        bool(wanted) and not any(w.startswith("members") for w in wanted)
    )


def _list(total: int, start: int, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


# ---- the SCIM endpoints ------------------------------------------------------------------


class DiscoveryController(Controller):
    path = "/"

    @post("/.search", name="scim.search_all", status_code=200)
    async def search_all(self, directory: NamedDependency[DirectoryService]) -> Response[Any]:
        raise NotImplementedException(
            detail="Search one resource type at a time: POST /Users/.search or /Groups/.search."
        )

    @get("/ServiceProviderConfig", name="scim.config")
    async def config(
        self, directory: NamedDependency[DirectoryService], settings: NamedDependency[Settings]
    ) -> Response[Any]:
        document = _service_provider_config(settings)
        document.meta = Meta(
            resource_type="ServiceProviderConfig",
            location=f"{settings.app_base_url}{BASE_PATH}/ServiceProviderConfig",
        )
        return scim(document.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))

    @get("/ResourceTypes", name="scim.resource_types")
    async def resource_types(
        self, directory: NamedDependency[DirectoryService], settings: NamedDependency[Settings]
    ) -> Response[Any]:
        documents = [self._resource_type(r, settings) for r in PROVIDER.resource_types]
        return scim(_list(len(documents), 1, documents))

    @get("/ResourceTypes/{name:str}", name="scim.resource_type")
    async def resource_type(
        self,
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
        name: FromPath[str],
    ) -> Response[Any]:
        for found in PROVIDER.resource_types:
            if str(found.id) == name:
                return scim(self._resource_type(found, settings))
        raise NotFoundException(detail=f"No resource type {name!r}.")

    @staticmethod
    def _resource_type(resource_type: ResourceType, settings: Settings) -> dict[str, Any]:
        copy = resource_type.model_copy(deep=True)
        copy.meta = Meta(
            resource_type="ResourceType",
            location=f"{settings.app_base_url}{BASE_PATH}/ResourceTypes/{resource_type.id}",
        )
        return copy.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)

    @get("/Schemas", name="scim.schemas")
    async def schemas(
        self, directory: NamedDependency[DirectoryService], settings: NamedDependency[Settings]
    ) -> Response[Any]:
        documents = [self._schema(s, settings) for s in PROVIDER.schemas]
        return scim(_list(len(documents), 1, documents))

    @get("/Schemas/{schema_id:str}", name="scim.schema")
    async def schema(
        self,
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
        schema_id: FromPath[str],
    ) -> Response[Any]:
        for found in PROVIDER.schemas:
            if str(found.id) == schema_id:
                return scim(self._schema(found, settings))
        raise NotFoundException(detail=f"No schema {schema_id!r}.")

    @staticmethod
    def _schema(schema: Any, settings: Settings) -> dict[str, Any]:
        copy = schema.model_copy(deep=True)
        copy.meta = Meta(
            resource_type="Schema",
            location=f"{settings.app_base_url}{BASE_PATH}/Schemas/{schema.id}",
        )
        return copy.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


class UsersController(Controller):
    path = "/Users"

    @get("/", name="scim.users")
    async def list_users(
        self,
        request: Request[Any, Any, Any],
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        page = await directory.list_users(
            request.query_params.get("filter"),
            _int_param(request, "startIndex"),
            _int_param(request, "count"),
        )
        parameters = _response_parameters(request, ScimUser)
        documents = await _user_document(directory, settings, page.rows, parameters)
        return scim(_list(page.total, page.start_index, documents))

    @post("/.search", name="scim.search_users", status_code=200)
    async def search_users(
        self,
        request: Request[Any, Any, Any],
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        search = await _search(request, ScimUser)
        page = await directory.list_users(
            str(search.filter) if search.filter else None, search.start_index, search.count
        )
        documents = await _user_document(directory, settings, page.rows, _selection(search))
        return scim(_list(page.total, page.start_index, documents))

    @post("/", name="scim.create_user", status_code=201)
    async def create_user(
        self,
        request: Request[Any, Any, Any],
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        model = await _parse(request, ScimUser, Context.RESOURCE_CREATION_REQUEST)
        row = await directory.create_user(model)
        (document,) = await _user_document(
            directory, settings, [row], None, Context.RESOURCE_CREATION_RESPONSE
        )
        return scim(document, 201, {"Location": _location(settings, "Users", row.id)})

    @get("/{resource_id:str}", name="scim.user")
    async def get_user(
        self,
        request: Request[Any, Any, Any],
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
        resource_id: FromPath[str],
    ) -> Response[Any]:
        row = await directory.user(resource_id)
        parameters = _response_parameters(request, ScimUser)
        (document,) = await _user_document(directory, settings, [row], parameters)
        return scim(document)

    @put("/{resource_id:str}", name="scim.replace_user")
    async def replace_user(
        self,
        request: Request[Any, Any, Any],
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
        resource_id: FromPath[str],
    ) -> Response[Any]:
        await directory.user(resource_id)  # 404 before the body is judged
        model = await _parse(request, ScimUser, Context.RESOURCE_REPLACEMENT_REQUEST)
        row = await directory.replace_user(resource_id, model)
        (document,) = await _user_document(
            directory, settings, [row], None, Context.RESOURCE_REPLACEMENT_RESPONSE
        )
        return scim(document)

    @patch("/{resource_id:str}", name="scim.patch_user")
    async def patch_user(
        self,
        request: Request[Any, Any, Any],
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
        resource_id: FromPath[str],
    ) -> Response[Any]:
        await directory.user(resource_id)
        operations = await _parse(request, PatchOp[ScimUser], Context.RESOURCE_PATCH_REQUEST)
        row = await directory.patch_user(resource_id, operations)
        (document,) = await _user_document(
            directory, settings, [row], None, Context.RESOURCE_PATCH_RESPONSE
        )
        return scim(document)

    @delete("/{resource_id:str}", name="scim.delete_user", status_code=204)
    async def delete_user(
        self, directory: NamedDependency[DirectoryService], resource_id: FromPath[str]
    ) -> None:
        await directory.delete_user(resource_id)


class GroupsController(Controller):
    path = "/Groups"

    @get("/", name="scim.groups")
    async def list_groups(
        self,
        request: Request[Any, Any, Any],
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        page = await directory.list_groups(
            request.query_params.get("filter"),
            _int_param(request, "startIndex"),
            _int_param(request, "count"),
        )
        parameters = _response_parameters(request, Group)
        documents = await _group_document(directory, settings, page.rows, parameters)
        return scim(_list(page.total, page.start_index, documents))

    @post("/.search", name="scim.search_groups", status_code=200)
    async def search_groups(
        self,
        request: Request[Any, Any, Any],
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        search = await _search(request, Group)
        page = await directory.list_groups(
            str(search.filter) if search.filter else None, search.start_index, search.count
        )
        documents = await _group_document(directory, settings, page.rows, _selection(search))
        return scim(_list(page.total, page.start_index, documents))

    @post("/", name="scim.create_group", status_code=201)
    async def create_group(
        self,
        request: Request[Any, Any, Any],
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        model = await _parse(request, Group, Context.RESOURCE_CREATION_REQUEST)
        row = await directory.create_group(model)
        (document,) = await _group_document(
            directory, settings, [row], None, Context.RESOURCE_CREATION_RESPONSE
        )
        return scim(document, 201, {"Location": _location(settings, "Groups", row.id)})

    @get("/{resource_id:str}", name="scim.group")
    async def get_group(
        self,
        request: Request[Any, Any, Any],
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
        resource_id: FromPath[str],
    ) -> Response[Any]:
        row = await directory.group(resource_id)
        parameters = _response_parameters(request, Group)
        (document,) = await _group_document(directory, settings, [row], parameters)
        return scim(document)

    @put("/{resource_id:str}", name="scim.replace_group")
    async def replace_group(
        self,
        request: Request[Any, Any, Any],
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
        resource_id: FromPath[str],
    ) -> Response[Any]:
        await directory.group(resource_id)
        model = await _parse(request, Group, Context.RESOURCE_REPLACEMENT_REQUEST)
        parameters = _response_parameters(request, Group)
        row = await directory.replace_group(resource_id, model)
        (document,) = await _group_document(
            directory, settings, [row], parameters, Context.RESOURCE_REPLACEMENT_RESPONSE
        )
        return scim(document)

    @patch("/{resource_id:str}", name="scim.patch_group")
    async def patch_group(
        self,
        request: Request[Any, Any, Any],
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
        resource_id: FromPath[str],
    ) -> Response[Any]:
        await directory.group(resource_id)
        operations = await _parse(request, PatchOp[Group], Context.RESOURCE_PATCH_REQUEST)
        parameters = _response_parameters(request, Group)
        row = await directory.patch_group(resource_id, operations)
        (document,) = await _group_document(
            directory, settings, [row], parameters, Context.RESOURCE_PATCH_RESPONSE
        )
        return scim(document)

    @delete("/{resource_id:str}", name="scim.delete_group", status_code=204)
    async def delete_group(
        self, directory: NamedDependency[DirectoryService], resource_id: FromPath[str]
    ) -> None:
        await directory.delete_group(resource_id)


def scim_router() -> Router:
    return Router(
        path=BASE_PATH,
        route_handlers=[DiscoveryController, UsersController, GroupsController],
        dependencies={"directory": Provide(provide_directory)},
        middleware=[record_refusals],
        exception_handlers={
            SCIMException: handle_scim_exception,
            DirectoryRefused: handle_refused,
            RequestEntityTooLarge: handle_too_large,
        },
        request_max_body_size=MAX_BODY_BYTES,
        opt={SCIM_OPT: True, PRIVATE_OPT: True},
        cache_control=PRIVATE,
        include_in_schema=False,
    )


# ---- the Directory sync settings page -----------------------------------------------------

FORM = FormErrors(
    "partials/directory_token_form.html", target="#directory-token-form", title="Directory sync"
)


class TokenForm(Struct):
    name: SingleLine = ""


class GroupRoleForm(Struct):
    role: SingleLine = ""


class DirectorySyncController(Controller):
    path = "/settings/directory"

    @staticmethod
    async def _page(
        tenant: TenantContext,
        db_session: AsyncSession,
        settings: Settings,
        service: DirectorySettingsService,
        issued: IssuedToken | None = None,
    ) -> Template:
        return Template(
            "pages/directory_settings.html",
            context=await page_context(
                tenant,
                db_session,
                status=await service.status(),
                issued=issued,
                scim_base_url=f"{settings.app_base_url}{BASE_PATH}/",
                roles=[r.value for r in ROLES_BY_RANK],
                form={},
                error=None,
            ),
            media_type=MediaType.HTML,
        )

    @get("/", name="directory.settings", guards=[requires(Permission.ORG_MANAGE)])
    async def settings_page(
        self,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        directory_settings: NamedDependency[DirectorySettingsService],
    ) -> Template:
        return await self._page(tenant, db_session, settings, directory_settings)

    @form_post(
        "/tokens",
        name="directory.create_token",
        permission=Permission.ORG_MANAGE,
        **FORM.route_options(),
    )
    async def create_token(
        self,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        directory_settings: NamedDependency[DirectorySettingsService],
        data: Annotated[TokenForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template:
        # Answered with the page, not a redirect: the secret is shown this once and is kept
        # nowhere (not even in the session) for a later page to show.
        issued = await directory_settings.create_token(data.name)
        return await self._page(tenant, db_session, settings, directory_settings, issued)

    @form_post(
        "/tokens/{token_id:uuid}/rotate",
        name="directory.rotate_token",
        permission=Permission.ORG_MANAGE,
    )
    async def rotate_token(
        self,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        directory_settings: NamedDependency[DirectorySettingsService],
        token_id: FromPath[UUID],
    ) -> Template:
        issued = await directory_settings.rotate_token(token_id)
        return await self._page(tenant, db_session, settings, directory_settings, issued)

    @form_post(
        "/tokens/{token_id:uuid}/revoke",
        name="directory.revoke_token",
        permission=Permission.ORG_MANAGE,
    )
    async def revoke_token(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        directory_settings: NamedDependency[DirectorySettingsService],
        token_id: FromPath[UUID],
    ) -> Redirect:
        token = await directory_settings.revoke_token(token_id)
        url = request.app.route_reverse("directory.settings", slug=tenant.organization.slug)
        return redirect_with_flash(
            request, f"The token “{token.name}” is revoked: it no longer works.", url
        )

    @form_post(
        "/groups/{group_id:uuid}/role",
        name="directory.map_group",
        permission=Permission.ORG_MANAGE,
    )
    async def map_group(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        directory_settings: NamedDependency[DirectorySettingsService],
        group_id: FromPath[UUID],
        data: Annotated[GroupRoleForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Redirect:
        role: Role | None = parse_mapped_role(data.role)
        group = await directory_settings.map_group(group_id, role)
        url = request.app.route_reverse("directory.settings", slug=tenant.organization.slug)
        said = f"the {role} role" if role else "no role"
        return redirect_with_flash(
            request, f"Members of the group “{group.display_name}” now get {said} from it.", url
        )
