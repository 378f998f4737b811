"""Directory sync test helpers: SCIM tokens made in the database, a SCIM client, and reads of
what the directory changed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from scim2_client.client import BaseSyncSCIMClient
from sqlalchemy.ext.asyncio import AsyncSession

from saas.db.models import Organization
from saas.scim.tokens import DirectorySettingsService
from saas.tenancy.caller import Caller
from tests.support.stack import Stack, in_org

SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def make_token(stack: Stack, slug: str = "acme", name: str = "Okta") -> str:
    async def work(session: AsyncSession, org: Organization) -> str:
        issued = await DirectorySettingsService(session, Caller.system(org)).create_token(name)
        return issued.secret

    return in_org(stack.settings, slug, work)


def scim_client(stack: Stack, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.app_url + "/scim/v2",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": SCIM_JSON,
            "Accept": SCIM_JSON,
        },
        timeout=15,
    )


def user_body(email: str, external_id: str | None = None, **extra: Any) -> dict[str, Any]:
    local = email.partition("@")[0]
    body: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "userName": email,
        "name": {"givenName": local.capitalize(), "familyName": "Directory"},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": f"{local.capitalize()} Directory",
        "active": True,
        **extra,
    }
    if external_id is not None:
        body["externalId"] = external_id
    return body


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


class HttpxScimClient(BaseSyncSCIMClient):
    """scim2-client over the `httpx` this project already uses (its own engine needs the
    `httpx2` fork): the three hooks an engine provides."""

    def __init__(self, client: httpx.Client, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    def _stays_under_base_url(self, endpoint: str) -> bool:
        base = self.client.base_url
        url = self.client.build_request("GET", endpoint).url
        return url.host == base.host and url.port == base.port and url.path.startswith(base.path)

    def _parse_json(self, response: Any) -> Any:
        return response.json()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, **kwargs)


ACME_AUTH0 = "org_AcmeDemo00000001"


def eventually(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll until `predicate()` is truthy (the outbox worker runs on its own schedule)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError("not so in time")


def auth0_role(stack: Stack, sub: str) -> str | None:
    """The member's role at Auth0 (the dev IdP) in acme, None when not a member there."""
    with stack.management() as management:
        answer = management.get(f"/organizations/{ACME_AUTH0}/members/{sub}/roles")
        if answer.status_code == 404:
            return None
        body = answer.json()
        roles = body["roles"] if isinstance(body, dict) else body
        members = management.get(f"/organizations/{ACME_AUTH0}/members").json()
        listed = members["members"] if isinstance(members, dict) else members
        if sub not in {m["user_id"] for m in listed}:
            return None
        return ",".join(sorted(r["name"] for r in roles)) or None
