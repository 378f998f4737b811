"""Tenant-wide catalogue: roles and connections."""

from __future__ import annotations

import base64
import re
from typing import Any

from cryptography import x509
from litestar import Request, Response, get, patch, post
from litestar.params import FromPath
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.db.models import ConnectionStrategy
from saas.devidp.context import Db
from saas.devidp.errors import ManagementError
from saas.devidp.ids import random_id
from saas.devidp.management import shapes
from saas.devidp.management.common import (
    bad_body,
    checkpoint_page,
    expect,
    json_object,
    not_found,
    offset_page,
    uses_checkpoint,
)
from saas.devidp.models import Client, Connection, Role

STRATEGIES = frozenset(strategy.value for strategy in ConnectionStrategy)
# Auth0: starts and ends with an alphanumeric, only alphanumerics and '-', at most 128.
CONNECTION_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,126}[A-Za-z0-9])?$")


@get("/roles", opt={"scopes": ("read:roles",)})
async def list_roles(request: Request[Any, Any, Any], db: Db) -> Any:
    roles = list(await db.scalars(select(Role).order_by(Role.name)))
    name_filter = request.query_params.get("name_filter")
    if name_filter:
        # Auth0's name_filter is a case-insensitive "contains" match.
        roles = [r for r in roles if name_filter.lower() in r.name.lower()]
    return offset_page(request.query_params, roles, "roles", shapes.role)


@get("/connections", opt={"scopes": ("read:connections",)})
async def list_connections(request: Request[Any, Any, Any], db: Db) -> Any:
    query = request.query_params
    connections = list(await db.scalars(select(Connection).order_by(Connection.id)))
    if query.get("name"):
        connections = [c for c in connections if c.name == query.get("name")]
    strategies = query.getall("strategy", [])
    if strategies:
        connections = [c for c in connections if c.strategy in strategies]
    if uses_checkpoint(query):
        return checkpoint_page(query, connections, "connections", lambda c: c.id, shapes.connection)
    return offset_page(query, connections, "connections", shapes.connection, checkpoint=True)


def _validate_options(strategy: str, options: dict[str, Any]) -> None:
    aliases = options.get("domain_aliases")
    if aliases is not None and (
        not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases)
    ):
        raise bad_body("'domain_aliases must be an array of strings' on property options")
    if strategy == "oidc" and not (options.get("discovery_url") or options.get("issuer")):
        raise bad_body("'oidc connections need options.discovery_url or options.issuer'")
    if strategy == "samlp" and not (
        options.get("metadataUrl") or options.get("metadataXml") or options.get("signInEndpoint")
    ):
        raise bad_body(
            "'samlp connections need options.metadataUrl, metadataXml or signInEndpoint'"
        )
    if strategy == "samlp" and "signingCert" in options:
        _check_signing_cert(options["signingCert"])


def _check_signing_cert(value: Any) -> None:
    """``options.signingCert`` is the Base64 of the certificate's PEM text, BEGIN and END lines
    included: what Auth0's Dashboard stores ("LS0tLS1CRUdJTi...") and what it expects from the
    Management API. Auth0 docs, Connect Your App to SAML Identity Providers, "Convert signing
    certificate to Base64"; Auth0 Community: "The correct format is a base64 encoded PEM
    certificate",
    https://community.auth0.com/t/options-signingcert-format-for-saml-connections/56159.
    Auth0 stores raw PEM without a word and then fails to verify responses that do not embed
    the certificate (Auth0 Community,
    https://community.auth0.com/t/the-supported-formats-for-saml-connection-signing-certificate-are-not-consistent-between-dashboard-and-management-api/121425);
    the dev IdP refuses it up front, and anything else that does not decode to a PEM
    certificate."""
    refusal = bad_body(
        "'options.signingCert must be the Base64 encoding of the PEM certificate (BEGIN and "
        "END lines included)' on property options"
    )
    if not isinstance(value, str) or "-----BEGIN" in value:
        raise refusal
    try:
        pem = base64.b64decode("".join(value.split()), validate=True)
        if b"-----BEGIN CERTIFICATE-----" not in pem:
            raise refusal
        x509.load_pem_x509_certificate(pem)
    except ValueError:  # binascii.Error included
        raise refusal from None


# What a connection's body may set; `name` and `strategy` only when it is created.
CONNECTION_FIELDS = frozenset(
    {
        "display_name",
        "options",
        "enabled_clients",
        "realms",
        "is_domain_connection",
        "metadata",
        "show_as_button",
    }
)


@post("/connections", opt={"scopes": ("create:connections",)}, status_code=201)
async def create_connection(request: Request[Any, Any, Any], db: Db) -> Response[Any]:
    body = await json_object(
        request,
        allowed=CONNECTION_FIELDS | {"name", "strategy"},
        required=("name", "strategy"),
    )
    name = expect(body["name"], str, "name")
    if not CONNECTION_NAME.match(name):
        raise bad_body("'String does not match pattern' on property name")
    strategy = expect(body["strategy"], str, "strategy")
    if strategy not in STRATEGIES:
        raise bad_body(f"'strategy must be one of {sorted(STRATEGIES)}' on property strategy")
    options = expect(body.get("options", {}), dict, "options")
    _validate_options(strategy, options)
    if await db.scalar(select(Connection).where(Connection.name == name)) is not None:
        raise ManagementError(
            409, "A connection with the same name already exists", "connection_conflict"
        )
    enabled_clients = body.get("enabled_clients", [])
    expect(enabled_clients, list, "enabled_clients")
    for client_id in enabled_clients:
        if await db.get(Client, client_id) is None:
            raise bad_body(f"'unknown client in enabled_clients: {client_id}'")
    conn = Connection(
        id=random_id("con_"),
        name=name,
        display_name=body.get("display_name"),
        strategy=strategy,
        options=options,
        realms=body.get("realms") or [name],
        metadata_=body.get("metadata") or {},
        is_domain_connection=bool(body.get("is_domain_connection", False)),
        enabled_clients=list(enabled_clients),
    )
    db.add(conn)
    await db.commit()
    return Response(shapes.connection(conn), status_code=201)


async def _connection(db: AsyncSession, connection_id: str) -> Connection:
    conn = await db.get(Connection, connection_id)
    if conn is None:
        raise not_found("The connection does not exist", "inexistent_connection")
    return conn


@get("/connections/{connection_id:str}", opt={"scopes": ("read:connections",)})
async def get_connection(connection_id: FromPath[str], db: Db) -> dict[str, Any]:
    return shapes.connection(await _connection(db, connection_id))


@patch("/connections/{connection_id:str}", opt={"scopes": ("update:connections",)})
async def update_connection(
    connection_id: FromPath[str], request: Request[Any, Any, Any], db: Db
) -> dict[str, Any]:
    conn = await _connection(db, connection_id)
    # name and strategy are immutable in Auth0; sending them is a validation error.
    body = await json_object(request, allowed=CONNECTION_FIELDS)
    if "options" in body:
        # Auth0 replaces `options` as a whole on PATCH.
        options = expect(body["options"], dict, "options")
        _validate_options(conn.strategy, options)
        conn.options = options
    if "display_name" in body:
        conn.display_name = expect(body["display_name"], str, "display_name")
    if "enabled_clients" in body:
        conn.enabled_clients = list(expect(body["enabled_clients"], list, "enabled_clients"))
    if "realms" in body:
        conn.realms = list(expect(body["realms"], list, "realms"))
    if "is_domain_connection" in body:
        conn.is_domain_connection = expect(
            body["is_domain_connection"], bool, "is_domain_connection"
        )
    if "metadata" in body:
        conn.metadata_ = expect(body["metadata"], dict, "metadata")
    await db.commit()
    return shapes.connection(conn)
