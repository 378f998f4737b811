"""Organization invitations. With ``send_invitation_email`` the email lands in the dev mailbox."""

from __future__ import annotations

import secrets
import string
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.devidp import store
from saas.devidp.context import Db, get_idp
from saas.devidp.errors import ManagementError
from saas.devidp.ids import iso8601, random_id
from saas.devidp.mailbox import deliver
from saas.devidp.management import shapes
from saas.devidp.management.common import (
    EMAIL,
    bad_body,
    bad_query,
    expect,
    json_object,
    not_found,
    offset_page,
    string_list,
)
from saas.devidp.management.organizations import get_org
from saas.devidp.models import Client, Connection, Invitation, Role

DEFAULT_TTL_SECONDS = 7 * 86400
MAX_TTL_SECONDS = 30 * 86400
_TICKET_ALPHABET = string.ascii_letters + string.digits


# Auth0 answers 200, not 201, to a created invitation: "200 Invitation successfully created"
# (auth0/docs articles/organizations/configure-membership.md), and so do the mocks Auth0's SDKs
# generate from its API definition ("Create invitations to an organization": 200, beside 201
# for "Add connections to an organization"; auth0/auth0-python wiremock/wiremock-mappings.json).
@post(
    "/organizations/{org_id:str}/invitations",
    opt={"scopes": ("create:organization_invitations",)},
    status_code=200,
)
async def create_invitation(
    org_id: FromPath[str], request: Request[Any, Any, Any], db: Db, state: State
) -> Response[Any]:
    org = await get_org(db, org_id)
    body = await json_object(
        request,
        allowed={
            "inviter",
            "invitee",
            "client_id",
            "connection_id",
            "app_metadata",
            "user_metadata",
            "ttl_sec",
            "roles",
            "send_invitation_email",
        },
        required=("inviter", "invitee", "client_id"),
    )
    inviter = expect(body["inviter"], dict, "inviter")
    inviter_name = inviter.get("name")
    if (
        set(inviter) != {"name"}
        or not isinstance(inviter_name, str)
        or not 1 <= len(inviter_name) <= 300
    ):
        raise bad_body("'inviter must be {name: string (1-300)}' on property inviter")
    invitee = expect(body["invitee"], dict, "invitee")
    email = invitee.get("email")
    if set(invitee) != {"email"} or not isinstance(email, str) or not EMAIL.fullmatch(email):
        raise bad_body("'invitee must be {email: a valid email address}' on property invitee")
    client = await db.get(Client, expect(body["client_id"], str, "client_id"))
    if client is None:
        raise not_found("The client does not exist", "inexistent_client")
    if not client.initiate_login_uri:
        # Auth0 builds the invitation link from the application's login URI.
        raise ManagementError(
            400,
            "The application must have an initiate_login_uri (Application Login URI) configured.",
            "invalid_body",
        )
    connection_id = body.get("connection_id")
    if connection_id is not None:
        conn = await db.get(Connection, expect(connection_id, str, "connection_id"))
        if conn is None or await store.enabled_connection(db, org.id, conn.name) is None:
            raise ManagementError(
                400, "The connection is not enabled for this organization.", "invalid_body"
            )
    ttl = body.get("ttl_sec", 0)
    expect(ttl, int, "ttl_sec")
    if not 0 <= ttl <= MAX_TTL_SECONDS:
        raise bad_body(f"'ttl_sec must be between 0 and {MAX_TTL_SECONDS}' on property ttl_sec")
    roles: list[str] = []
    if "roles" in body:
        roles = string_list(body, "roles", min_items=0, max_items=50)
        for role_id in roles:
            if await db.get(Role, role_id) is None:
                raise not_found(f"The role does not exist: {role_id}", "inexistent_role")
    for name in ("app_metadata", "user_metadata"):
        if name in body:
            expect(body[name], dict, name)
    send_email = body.get("send_invitation_email", True)
    expect(send_email, bool, "send_invitation_email")

    idp = get_idp(state)
    now = idp.clock()
    ticket = "".join(secrets.choice(_TICKET_ALPHABET) for _ in range(32))
    query = urlencode({"invitation": ticket, "organization": org.id, "organization_name": org.name})
    invitation = Invitation(
        id=random_id("uinv_"),
        organization_id=org.id,
        ticket_id=ticket,
        inviter_name=inviter_name,
        invitee_email=email.lower(),
        client_id=client.client_id,
        connection_id=connection_id,
        roles=roles,
        app_metadata=body.get("app_metadata") or {},
        user_metadata=body.get("user_metadata") or {},
        invitation_url=f"{client.initiate_login_uri}?{query}",
        created_at=now,
        expires_at=now + (ttl or DEFAULT_TTL_SECONDS),
    )
    db.add(invitation)
    if send_email:
        org_label = org.display_name or org.name
        deliver(
            db,
            recipient=invitation.invitee_email,
            subject=f"You've been invited to join {org_label}",
            body=(
                f"{inviter_name} has invited you to join {org_label} on {client.name}.\n\n"
                f"Accept the invitation: {invitation.invitation_url}\n\n"
                f"This invitation expires on {iso8601(invitation.expires_at)}."
            ),
            link=invitation.invitation_url,
            now=now,
        )
    await db.commit()
    return Response(shapes.invitation(invitation), status_code=200)


@get(
    "/organizations/{org_id:str}/invitations",
    opt={"scopes": ("read:organization_invitations",)},
)
async def list_invitations(org_id: FromPath[str], request: Request[Any, Any, Any], db: Db) -> Any:
    await get_org(db, org_id)
    # "sort: Field to sort by. Use field:order where order is 1 for ascending and -1 for
    # descending. Defaults to created_at:-1" (Get invitations to an organization): newest first.
    sort = request.query_params.get("sort") or "created_at:-1"
    if sort not in ("created_at:-1", "created_at:1"):
        raise bad_query(f"the dev IdP sorts invitations by created_at:1 or :-1 only, not {sort}")
    newest_first = sort == "created_at:-1"
    invitations = list(
        await db.scalars(
            select(Invitation)
            .where(Invitation.organization_id == org_id)
            .order_by(
                Invitation.created_at.desc() if newest_first else Invitation.created_at,
                Invitation.id.desc() if newest_first else Invitation.id,
            )
        )
    )
    return offset_page(request.query_params, invitations, "invitations", shapes.invitation)


async def _invitation(db: AsyncSession, org_id: str, invitation_id: str) -> Invitation:
    await get_org(db, org_id)
    invitation = await db.get(Invitation, invitation_id)
    if invitation is None or invitation.organization_id != org_id:
        raise not_found("The invitation does not exist", "inexistent_invitation")
    return invitation


@get(
    "/organizations/{org_id:str}/invitations/{invitation_id:str}",
    opt={"scopes": ("read:organization_invitations",)},
)
async def get_invitation(
    org_id: FromPath[str], invitation_id: FromPath[str], db: Db
) -> dict[str, Any]:
    return shapes.invitation(await _invitation(db, org_id, invitation_id))


@delete(
    "/organizations/{org_id:str}/invitations/{invitation_id:str}",
    opt={"scopes": ("delete:organization_invitations",)},
    status_code=204,
)
async def delete_invitation(org_id: FromPath[str], invitation_id: FromPath[str], db: Db) -> None:
    await db.delete(await _invitation(db, org_id, invitation_id))
    await db.commit()
