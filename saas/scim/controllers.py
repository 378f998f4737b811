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
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, ClassVar, NamedTuple
from uuid import UUID

import structlog
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
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor
from saas.config import Settings
from saas.db.models import (
    DirectoryUser,
    Organization,
    OrganizationStatus,
    ScimToken,
)
from saas.login.sessions import RATE_LIMIT_STORE
from saas.scim.refusals import BINDING_STATE, REFUSAL_STATE, Binding, record_refusals
from saas.scim.services import (
    DEFAULT_PAGE,
    MAX_PAGE,
    POLICY,
    DirectoryRefused,
    DirectoryService,
    Page,
    ScimUser,
)
from saas.scim.tokens import DirectorySettingsService, IssuedToken, hash_token, parse_mapped_role
from saas.stores import WindowCounter
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission, Role
from saas.tenancy.policy import ROLES_BY_RANK
from saas.tenancy.routers import PRIVATE, PRIVATE_OPT, form_post
from saas.web.errors import SCIM_MEDIA_TYPE, SCIM_OPT, scim_error_response
from saas.web.input import SingleLine
from saas.web.pages import page_context
from saas.web.refusals import FormErrors, redirect_with_flash

logger = structlog.get_logger("saas.scim")

BASE_PATH = "/scim/v2"
RATE_WINDOW_SECONDS = 60
# A token's last use is written at most this often: a 10,000-person push is not 10,000 writes
# of one row that every request would otherwise queue behind.
LAST_USED_PRECISION = datetime.timedelta(seconds=5)
# A SCIM request's body: what 1,000 group members or PATCH operations take, with room to spare.
MAX_BODY_BYTES = 1_000_000


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
    presented = hash_token(credentials.strip())
    async with db_config.get_session() as own:
        found = (
            await own.execute(
                select(ScimToken.id, ScimToken.name, ScimToken.revoked_at, Organization.status)
                .join(Organization, Organization.id == ScimToken.organization_id)
                .where(ScimToken.token_hash == presented)
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
            .where(
                ScimToken.id == token_id,
                ScimToken.token_hash == presented,
                ScimToken.revoked_at.is_(None),
            )
        )
    ).scalar_one_or_none()
    if organization is None:  # revoked or rotated in between
        raise UnauthorizedException(detail="This SCIM token is not valid, or was revoked.")
    request.state[BINDING_STATE] = Binding(organization.id, token_id, token_name)
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
    return DirectoryService(
        db_session, organization, actor, token_id=token_id, token_hash=presented
    )


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


class _DiscoveryCollection(Controller):
    """/ResourceTypes or /Schemas (RFC 7644 §4): fixed documents, listed or found by id."""

    items: ClassVar[Sequence[Any]]
    resource_type: ClassVar[str]
    label: ClassVar[str]

    @get("/")
    async def list_described(
        self, directory: NamedDependency[DirectoryService], settings: NamedDependency[Settings]
    ) -> Response[Any]:
        documents = [self._description(item, settings) for item in self.items]
        return scim(_list(len(documents), 1, documents))

    @get("/{item_id:str}")
    async def one_described(
        self,
        directory: NamedDependency[DirectoryService],
        settings: NamedDependency[Settings],
        item_id: FromPath[str],
    ) -> Response[Any]:
        for found in self.items:
            if str(found.id) == item_id:
                return scim(self._description(found, settings))
        raise NotFoundException(detail=f"No {self.label} {item_id!r}.")

    def _description(self, item: Any, settings: Settings) -> dict[str, Any]:
        copy = item.model_copy(deep=True)
        copy.meta = Meta(
            resource_type=self.resource_type,
            location=f"{settings.app_base_url}{BASE_PATH}{self.path}/{item.id}",
        )
        return copy.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


class ResourceTypesController(_DiscoveryCollection):
    path = "/ResourceTypes"
    items = PROVIDER.resource_types
    resource_type = "ResourceType"
    label = "resource type"


class SchemasController(_DiscoveryCollection):
    path = "/Schemas"
    items = PROVIDER.schemas
    resource_type = "Schema"
    label = "schema"


class ScimResource(Struct, frozen=True):
    """What tells one SCIM resource type from another: its path, its model, how its rows become
    documents, and the directory's operations on it. Everything else the endpoints share."""

    kind: str
    model: Any
    patch_model: Any
    document: Callable[..., Awaitable[list[dict[str, Any]]]]
    search: Callable[..., Awaitable[Page]]
    find: Callable[..., Awaitable[Any]]
    create: Callable[..., Awaitable[Any]]
    replace: Callable[..., Awaitable[Any]]
    patch: Callable[..., Awaitable[Any]]
    delete: Callable[..., Awaitable[Any]]


USERS = ScimResource(
    kind="Users",
    model=ScimUser,
    patch_model=PatchOp[ScimUser],
    document=_user_document,
    search=DirectoryService.list_users,
    find=DirectoryService.user,
    create=DirectoryService.create_user,
    replace=DirectoryService.replace_user,
    patch=DirectoryService.patch_user,
    delete=DirectoryService.delete_user,
)
GROUPS = ScimResource(
    kind="Groups",
    model=Group,
    patch_model=PatchOp[Group],
    document=_group_document,
    search=DirectoryService.list_groups,
    find=DirectoryService.group,
    create=DirectoryService.create_group,
    replace=DirectoryService.replace_group,
    patch=DirectoryService.patch_group,
    delete=DirectoryService.delete_group,
)


class _Change(NamedTuple):
    """A PUT or a PATCH: what its body is, what it does, and the SCIM contexts of both ends."""

    body: Any
    apply: Callable[..., Awaitable[Any]]
    request_context: Context
    response_context: Context


class Exchange(NamedTuple):
    """One SCIM request and what every resource endpoint answers it with."""

    request: Request[Any, Any, Any]
    directory: DirectoryService
    settings: Settings


async def provide_exchange(
    request: Request[Any, Any, Any],
    directory: NamedDependency[DirectoryService],
    settings: NamedDependency[Settings],
) -> Exchange:
    return Exchange(request, directory, settings)


class ScimResourceController(Controller):
    """The endpoints of one resource type (RFC 7644 §3): a subclass names its `resource`.

    Every answer that carries a resource honours `attributes`/`excludedAttributes` (§3.9),
    checked before anything is written."""

    resource: ClassVar[ScimResource]

    @get("/")
    async def list_resources(self, exchange: NamedDependency[Exchange]) -> Response[Any]:
        query = exchange.request.query_params
        page = await self.resource.search(
            exchange.directory,
            query.get("filter"),
            _int_param(exchange.request, "startIndex"),
            _int_param(exchange.request, "count"),
        )
        return await self._page(exchange, page, self._parameters(exchange))

    @post("/.search", status_code=200)
    async def search_resources(self, exchange: NamedDependency[Exchange]) -> Response[Any]:
        search = await _search(exchange.request, self.resource.model)
        page = await self.resource.search(
            exchange.directory,
            str(search.filter) if search.filter else None,
            search.start_index,
            search.count,
        )
        return await self._page(exchange, page, _selection(search))

    @post("/", status_code=201)
    async def create_resource(self, exchange: NamedDependency[Exchange]) -> Response[Any]:
        model = await _parse(
            exchange.request, self.resource.model, Context.RESOURCE_CREATION_REQUEST
        )
        parameters = self._parameters(exchange)
        row = await self.resource.create(exchange.directory, model)
        document = await self._one(exchange, row, parameters, Context.RESOURCE_CREATION_RESPONSE)
        location = _location(exchange.settings, self.resource.kind, row.id)
        return scim(document, 201, {"Location": location})

    @get("/{resource_id:str}")
    async def get_resource(
        self, exchange: NamedDependency[Exchange], resource_id: FromPath[str]
    ) -> Response[Any]:
        row = await self.resource.find(exchange.directory, resource_id)
        parameters = self._parameters(exchange)
        return scim(await self._one(exchange, row, parameters, Context.RESOURCE_QUERY_RESPONSE))

    @put("/{resource_id:str}")
    async def replace_resource(
        self, exchange: NamedDependency[Exchange], resource_id: FromPath[str]
    ) -> Response[Any]:
        change = _Change(
            self.resource.model,
            self.resource.replace,
            Context.RESOURCE_REPLACEMENT_REQUEST,
            Context.RESOURCE_REPLACEMENT_RESPONSE,
        )
        return await self._change(exchange, resource_id, change)

    @patch("/{resource_id:str}")
    async def patch_resource(
        self, exchange: NamedDependency[Exchange], resource_id: FromPath[str]
    ) -> Response[Any]:
        change = _Change(
            self.resource.patch_model,
            self.resource.patch,
            Context.RESOURCE_PATCH_REQUEST,
            Context.RESOURCE_PATCH_RESPONSE,
        )
        return await self._change(exchange, resource_id, change)

    @delete("/{resource_id:str}", status_code=204)
    async def delete_resource(
        self, directory: NamedDependency[DirectoryService], resource_id: FromPath[str]
    ) -> None:
        await self.resource.delete(directory, resource_id)

    async def _change(self, exchange: Exchange, resource_id: str, change: _Change) -> Response[Any]:
        await self.resource.find(exchange.directory, resource_id)  # 404 before the body is judged
        body = await _parse(exchange.request, change.body, change.request_context)
        parameters = self._parameters(exchange)
        row = await change.apply(exchange.directory, resource_id, body)
        return scim(await self._one(exchange, row, parameters, change.response_context))

    def _parameters(self, exchange: Exchange) -> ResponseParameters[Any]:
        return _response_parameters(exchange.request, self.resource.model)

    async def _page(
        self, exchange: Exchange, page: Page, parameters: ResponseParameters[Any] | None
    ) -> Response[Any]:
        documents = await self.resource.document(
            exchange.directory, exchange.settings, page.rows, parameters
        )
        return scim(_list(page.total, page.start_index, documents))

    async def _one(
        self,
        exchange: Exchange,
        row: Any,
        parameters: ResponseParameters[Any] | None,
        context: Context,
    ) -> dict[str, Any]:
        (document,) = await self.resource.document(
            exchange.directory, exchange.settings, [row], parameters, context
        )
        return document


class UsersController(ScimResourceController):
    path = "/Users"
    resource = USERS


class GroupsController(ScimResourceController):
    path = "/Groups"
    resource = GROUPS


def scim_router() -> Router:
    return Router(
        path=BASE_PATH,
        route_handlers=[
            DiscoveryController,
            ResourceTypesController,
            SchemasController,
            UsersController,
            GroupsController,
        ],
        dependencies={
            "directory": Provide(provide_directory),
            "exchange": Provide(provide_exchange),
        },
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
