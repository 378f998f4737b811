"""Organizations and their enabled connections."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath
from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.devidp import store
from saas.devidp.context import Db, get_idp
from saas.devidp.errors import ManagementError
from saas.devidp.ids import random_id
from saas.devidp.management import common, shapes
from saas.devidp.models import Connection, MemberRole, Organization, OrganizationConnection

# Lowercase letters, digits, `-` and `_`, 1-50 characters (Auth0 docs); we also require an
# alphanumeric first character, which Auth0's examples and the app's slugs always satisfy.
ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
MAX_ENABLED_CONNECTIONS = 10


def no_org() -> ManagementError:
    return common.not_found("No organization found by that id or name", "inexistent_organization")


async def get_org(db: AsyncSession, org_id: str) -> Organization:
    org = await db.get(Organization, org_id)
    if org is None:
        raise no_org()
    return org


def _validate_org_fields(body: dict[str, Any]) -> None:
    if "name" in body:
        name = common.expect(body["name"], str, "name")
        if not ORG_NAME.match(name):
            raise common.bad_body(
                "'String does not match pattern: lowercase letters, digits, - and _ "
                "(1-50 characters, starting with a letter or digit)' on property name"
            )
    if "display_name" in body:
        display = common.expect(body["display_name"], str, "display_name")
        if not 1 <= len(display) <= 255:
            raise common.bad_body("'String length must be 1-255' on property display_name")
    if "branding" in body and body["branding"] is not None:
        common.expect(body["branding"], dict, "branding")
    if "metadata" in body:
        metadata = common.expect(body["metadata"], dict, "metadata")
        if len(metadata) > 25 or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in metadata.items()
        ):
            raise common.bad_body(
                "'metadata: up to 25 string keys with string values' on property metadata"
            )


async def _name_taken(db: AsyncSession, name: str, except_id: str | None = None) -> bool:
    existing = await db.scalar(select(Organization).where(Organization.name == name))
    return existing is not None and existing.id != except_id


_ORG_READ = {"scopes": ("read:organizations",)}


@post("/organizations", opt={"scopes": ("create:organizations",)}, status_code=201)
async def create_organization(
    request: Request[Any, Any, Any], db: Db, state: State
) -> Response[Any]:
    body = await common.json_object(
        request,
        allowed={"name", "display_name", "branding", "metadata", "enabled_connections"},
        required=("name",),
    )
    _validate_org_fields(body)
    if await _name_taken(db, body["name"]):
        raise ManagementError(
            409, "An organization with this name already exists.", "organization_conflict"
        )
    now = get_idp(state).clock()
    org = Organization(
        id=random_id("org_"),
        name=body["name"],
        display_name=body.get("display_name"),
        branding=body.get("branding"),
        metadata_=body.get("metadata") or {},
        created_at=now,
    )
    db.add(org)
    await db.flush()
    enabled = body.get("enabled_connections")
    rendered_connections = []
    if enabled is not None:
        common.expect(enabled, list, "enabled_connections")
        if len(enabled) > MAX_ENABLED_CONNECTIONS:
            raise common.bad_body("'Array is too long, maximum 10' on property enabled_connections")
        for item in enabled:
            link, conn = await _enable(db, org.id, common.expect(item, dict, "enabled_connections"))
            rendered_connections.append(shapes.enabled_connection(link, conn))
    await db.commit()
    data = shapes.organization(org)
    if enabled is not None:
        data["enabled_connections"] = rendered_connections
    return Response(data, status_code=201)


@get("/organizations", opt=_ORG_READ)
async def list_organizations(request: Request[Any, Any, Any], db: Db) -> Any:
    orgs = list(await db.scalars(select(Organization).order_by(Organization.id)))
    query = request.query_params
    if common.uses_checkpoint(query):
        return common.checkpoint_page(
            query, orgs, "organizations", lambda o: o.id, shapes.organization
        )
    return common.offset_page(query, orgs, "organizations", shapes.organization, checkpoint=True)


@get("/organizations/{org_id:str}", opt=_ORG_READ)
async def get_organization(org_id: FromPath[str], db: Db) -> dict[str, Any]:
    return shapes.organization(await get_org(db, org_id))


@get("/organizations/name/{name:str}", opt=_ORG_READ)
async def get_organization_by_name(name: FromPath[str], db: Db) -> dict[str, Any]:
    org = await db.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        raise no_org()
    return shapes.organization(org)


@patch("/organizations/{org_id:str}", opt={"scopes": ("update:organizations",)})
async def update_organization(
    org_id: FromPath[str], request: Request[Any, Any, Any], db: Db
) -> dict[str, Any]:
    org = await get_org(db, org_id)
    body = await common.json_object(
        request, allowed={"name", "display_name", "branding", "metadata"}
    )
    _validate_org_fields(body)
    if "name" in body:
        if await _name_taken(db, body["name"], except_id=org.id):
            raise ManagementError(
                409, "An organization with this name already exists.", "organization_conflict"
            )
        org.name = body["name"]
    if "display_name" in body:
        org.display_name = body["display_name"]
    if "branding" in body:
        org.branding = body["branding"]
    if "metadata" in body:
        # Auth0 merges metadata; a null value deletes that key.
        merged = {**(org.metadata_ or {}), **body["metadata"]}
        org.metadata_ = {k: v for k, v in merged.items() if v is not None}
    await db.commit()
    return shapes.organization(org)


@delete("/organizations/{org_id:str}", opt={"scopes": ("delete:organizations",)}, status_code=204)
async def delete_organization(org_id: FromPath[str], db: Db) -> None:
    org = await get_org(db, org_id)
    # Member roles have no foreign key to the organization; the rest cascades.
    await db.execute(sql_delete(MemberRole).where(MemberRole.organization_id == org.id))
    await db.delete(org)
    await db.commit()


# ---- enabled connections ----------------------------------------------------------------


async def _enable(
    db: AsyncSession, org_id: str, body: dict[str, Any]
) -> tuple[OrganizationConnection, Connection]:
    extra = set(body) - {
        "connection_id",
        "assign_membership_on_login",
        "show_as_button",
        "is_signup_enabled",
    }
    if extra:
        raise common.bad_body(f"'Additional properties not allowed: {','.join(sorted(extra))}'")
    if "connection_id" not in body:
        raise common.bad_body("'Missing required property: connection_id'")
    conn = await db.get(Connection, common.expect(body["connection_id"], str, "connection_id"))
    if conn is None:
        raise common.not_found("The connection does not exist", "inexistent_connection")
    if await db.get(OrganizationConnection, (org_id, conn.id)) is not None:
        raise ManagementError(
            409, "The connection is already enabled for this organization.", "conflict"
        )
    count = len(await store.enabled_connections(db, org_id))
    if count >= MAX_ENABLED_CONNECTIONS:
        raise ManagementError(
            400, "An organization can have at most 10 enabled connections.", "too_many"
        )
    flags = {}
    for flag in ("assign_membership_on_login", "show_as_button", "is_signup_enabled"):
        if flag in body:
            flags[flag] = common.expect(body[flag], bool, flag)
    if flags.get("is_signup_enabled") and conn.strategy != "auth0":
        raise common.bad_body("'is_signup_enabled applies to database connections only'")
    link = OrganizationConnection(
        organization_id=org_id,
        connection_id=conn.id,
        assign_membership_on_login=flags.get("assign_membership_on_login", False),
        show_as_button=flags.get("show_as_button", True),
        is_signup_enabled=flags.get("is_signup_enabled", False),
    )
    db.add(link)
    await db.flush()
    return link, conn


_CONN_READ = {"scopes": ("read:organization_connections",)}


@get("/organizations/{org_id:str}/enabled_connections", opt=_CONN_READ)
async def list_enabled_connections(
    org_id: FromPath[str], request: Request[Any, Any, Any], db: Db
) -> Any:
    await get_org(db, org_id)
    rows = await store.enabled_connections(db, org_id)
    return common.offset_page(
        request.query_params, rows, "enabled_connections", lambda r: shapes.enabled_connection(*r)
    )


@post(
    "/organizations/{org_id:str}/enabled_connections",
    opt={"scopes": ("create:organization_connections",)},
    status_code=201,
)
async def add_enabled_connection(
    org_id: FromPath[str], request: Request[Any, Any, Any], db: Db
) -> dict[str, Any]:
    await get_org(db, org_id)
    body = await common.json_object(
        request,
        allowed={
            "connection_id",
            "assign_membership_on_login",
            "show_as_button",
            "is_signup_enabled",
        },
        required=("connection_id",),
    )
    link, conn = await _enable(db, org_id, body)
    await db.commit()
    return shapes.enabled_connection(link, conn)


async def _link(
    db: AsyncSession, org_id: str, connection_id: str
) -> tuple[OrganizationConnection, Connection]:
    await get_org(db, org_id)
    link = await db.get(OrganizationConnection, (org_id, connection_id))
    conn = await db.get(Connection, connection_id)
    if link is None or conn is None:
        raise common.not_found(
            "The connection is not enabled for this organization", "inexistent_connection"
        )
    return link, conn


@get("/organizations/{org_id:str}/enabled_connections/{connection_id:str}", opt=_CONN_READ)
async def get_enabled_connection(
    org_id: FromPath[str], connection_id: FromPath[str], db: Db
) -> dict[str, Any]:
    return shapes.enabled_connection(*await _link(db, org_id, connection_id))


@patch(
    "/organizations/{org_id:str}/enabled_connections/{connection_id:str}",
    opt={"scopes": ("update:organization_connections",)},
)
async def update_enabled_connection(
    org_id: FromPath[str], connection_id: FromPath[str], request: Request[Any, Any, Any], db: Db
) -> dict[str, Any]:
    link, conn = await _link(db, org_id, connection_id)
    body = await common.json_object(
        request, allowed={"assign_membership_on_login", "show_as_button", "is_signup_enabled"}
    )
    for flag, value in body.items():
        setattr(link, flag, common.expect(value, bool, flag))
    await db.commit()
    return shapes.enabled_connection(link, conn)


@delete(
    "/organizations/{org_id:str}/enabled_connections/{connection_id:str}",
    opt={"scopes": ("delete:organization_connections",)},
    status_code=204,
)
async def remove_enabled_connection(
    org_id: FromPath[str], connection_id: FromPath[str], db: Db
) -> None:
    link, _ = await _link(db, org_id, connection_id)
    await db.delete(link)
    await db.commit()
