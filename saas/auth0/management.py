"""A small Auth0 Management API client: the calls the outbox makes, nothing more.

The machine-to-machine token is cached and refreshed a minute before it expires; a token Auth0
refuses (401: revoked, or its signing key rotated) is dropped and replaced once. Failures are
sorted into "try again later" (429, 5xx, timeouts, network errors) and "will never work" (other
4xx), which is what the outbox's retry policy needs to know.

Everything here talks to the tenant's canonical domain (`Settings.auth0_management_base_url`),
which differs from AUTH0_DOMAIN when people sign in on a custom domain.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any
from urllib.parse import quote

import httpx

from saas.config import Settings
from saas.http import tls_context

TOKEN_REFRESH_MARGIN_SECONDS = 60.0
# A 429 is retried when Auth0's rate-limit window resets, but never later than this: a clock
# that disagrees with Auth0's must not park a job for hours.
MAX_RATE_LIMIT_WAIT_SECONDS = 300.0
# Auth0's largest page (per_page) for the lists used here, and the first records offset
# pagination can reach at all: "Requesting page exceeds the allowed maximum of 1000 records"
# (400 invalid_paging; auth0/docs articles/organizations/configure-membership.md; the 100
# maximum: "'Value 1000 is greater than maximum 100' on property per_page", node-auth0#648).
PER_PAGE = 100
PAGING_WINDOW = 1000


class ManagementError(Exception):
    """A call that failed; `retry_after` is set when trying again later can succeed."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.retry_after is not None


def _retry_after(response: httpx.Response) -> float:
    """Seconds to wait after a 429. Auth0 answers its rate-limited calls with
    X-RateLimit-Limit, -Remaining and -Reset, the last "a UNIX timestamp of the expected time
    when the rate limit will reset" (Auth0 docs, Rate Limit Policy: "Predict when requests to a
    tenant will be rate limited"; Auth0 Community, "How to tell if you are approaching the
    Rate-Limit",
    https://community.auth0.com/t/how-to-tell-if-you-are-approaching-the-rate-limit/82103).
    Retry-After is not promised, so it is only a fallback."""
    reset = _number(response.headers.get("x-ratelimit-reset"))
    if reset is not None:
        return min(MAX_RATE_LIMIT_WAIT_SECONDS, max(0.0, reset - time.time()))
    retry_after = _number(response.headers.get("retry-after"))
    if retry_after is not None:
        return min(MAX_RATE_LIMIT_WAIT_SECONDS, max(0.0, retry_after))
    return 1.0


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class ManagementClient:
    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.base = settings.auth0_management_base_url + "/api/v2"
        self.http = http or httpx.AsyncClient(
            timeout=settings.auth0_request_timeout_seconds, verify=tls_context()
        )
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = asyncio.Lock()
        self._role_ids: dict[str, str] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    # ---- plumbing ----------------------------------------------------------------------

    def _management_secret(self) -> str:
        return self.settings.auth0_management_client_secret.get_secret_value()

    async def _access_token(self) -> str:
        async with self._token_lock:
            if self._token and time.monotonic() < self._token_expires_at:
                return self._token
            response = await self._send(
                "POST",
                self.settings.auth0_management_base_url + "/oauth/token",
                json={
                    "grant_type": "client_credentials",
                    "client_id": self.settings.auth0_management_client_id,
                    "client_secret": self._management_secret(),
                    "audience": self.settings.auth0_management_audience,
                },
            )
            body = response.json()
            self._token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 86400))
            self._token_expires_at = time.monotonic() + max(
                0.0, lifetime - TOKEN_REFRESH_MARGIN_SECONDS
            )
            return self._token

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.TimeoutException as error:
            raise ManagementError(f"{method} {url}: timed out", retry_after=1.0) from error
        except httpx.TransportError as error:
            raise ManagementError(
                f"{method} {url}: {type(error).__name__}", retry_after=1.0
            ) from error
        if response.status_code == 429:
            raise ManagementError(
                f"{method} {url}: rate limited", status=429, retry_after=_retry_after(response)
            )
        if response.status_code >= 500:
            raise ManagementError(
                f"{method} {url}: {response.status_code}",
                status=response.status_code,
                retry_after=1.0,
            )
        if response.status_code >= 400:
            raise ManagementError(
                f"{method} {url}: {response.status_code} {_message(response)}",
                status=response.status_code,
            )
        return response

    def _forget_token(self, token: str) -> None:
        # Only the token that was refused: another call may have replaced it already.
        if self._token == token:
            self._token = None
            self._token_expires_at = 0.0

    async def _with_token(self, token: str, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._send(
                method, self.base + path, headers={"Authorization": f"Bearer {token}"}, **kwargs
            )
        except ManagementError as error:
            if error.status == 401:
                self._forget_token(token)
            raise
        return response.json() if response.content else None

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        token = await self._access_token()
        try:
            return await self._with_token(token, method, path, **kwargs)
        except ManagementError as error:
            if error.status != 401:
                raise
        # The cached token was refused (revoked, its signing key rotated, or expired early):
        # fetch a new one and try once more. A second 401 is final: then the credentials or
        # the client's grant are wrong, and the next job starts with a fresh token again.
        return await self._with_token(await self._access_token(), method, path, **kwargs)

    # ---- the operations the outbox needs ----------------------------------------------

    async def organization_by_name(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.call("GET", f"/organizations/name/{quote(name)}")
        except ManagementError as error:
            if error.status == 404:
                return None
            raise

    async def ensure_organization(self, name: str, display_name: str) -> str:
        """Idempotent: an organization is never created twice (looked up by name first, and a
        409 from a racing creator resolves to the existing one)."""
        existing = await self.organization_by_name(name)
        if existing:
            return str(existing["id"])
        try:
            created = await self.call(
                "POST", "/organizations", json={"name": name, "display_name": display_name}
            )
        except ManagementError as error:
            if error.status == 409 and (again := await self.organization_by_name(name)):
                return str(again["id"])
            raise
        return str(created["id"])

    async def update_organization(self, org_id: str, display_name: str) -> None:
        await self.call("PATCH", f"/organizations/{org_id}", json={"display_name": display_name})

    async def enabled_connection(self, org_id: str, connection_id: str) -> dict[str, Any] | None:
        try:
            found = await self.call(
                "GET", f"/organizations/{org_id}/enabled_connections/{connection_id}"
            )
        except ManagementError as error:
            if error.status == 404:
                return None
            raise
        return dict(found or {})

    async def enable_connection(
        self, org_id: str, connection_id: str, assign_on_login: bool
    ) -> None:
        """Enable the connection on the organization with this "Membership on authentication"
        setting, or bring the setting of an enabled one up to date. Auth0 does not enable a
        connection twice (a second POST answers 409 and changes nothing), so a changed
        setting is a PATCH of the enabled connection: "Update the Connection of an
        Organization", PATCH /organizations/{id}/enabled_connections/{connectionId} with
        assign_membership_on_login (Auth0 Management API docs,
        https://auth0.com/docs/api/management/v2/organizations/patch-enabled-connections-by-connection-id)."""
        path = f"/organizations/{org_id}/enabled_connections"
        current = await self.enabled_connection(org_id, connection_id)
        if current is None:
            try:
                await self.call(
                    "POST",
                    path,
                    json={
                        "connection_id": connection_id,
                        "assign_membership_on_login": assign_on_login,
                    },
                )
                return
            except ManagementError as error:
                if error.status != 409:
                    raise
                # Enabled meanwhile by a racing job: its setting may be another one.
        elif bool(current.get("assign_membership_on_login")) == assign_on_login:
            return
        await self.call(
            "PATCH",
            f"{path}/{connection_id}",
            json={"assign_membership_on_login": assign_on_login},
        )

    async def connection_by_name(self, name: str) -> dict[str, Any] | None:
        found = await self.call("GET", "/connections", params={"name": name})
        items = _listed(found, "connections")
        return next((c for c in items if c.get("name") == name), None)

    async def ensure_connection(
        self,
        *,
        name: str,
        strategy: str,
        display_name: str,
        options: dict[str, Any],
        owner: str,
    ) -> str:
        """Create the connection, or bring our existing one (same name) up to date. `owner`
        (our organization id) is stored in the connection's metadata: a connection some other
        organization created is never adopted, or its users would be handed over."""
        existing = await self.connection_by_name(name)
        if existing is None:
            created = await self.call(
                "POST",
                "/connections",
                json={
                    "name": name,
                    "strategy": strategy,
                    "display_name": display_name,
                    "options": options,
                    "enabled_clients": [self.settings.auth0_client_id],
                    "metadata": {"saas_organization_id": owner},
                },
            )
            return str(created["id"])
        if (existing.get("metadata") or {}).get("saas_organization_id") != owner:
            raise ManagementError(
                f"the Auth0 connection {name!r} belongs to someone else; refusing to change it",
                status=409,
            )
        await self.call(
            "PATCH",
            f"/connections/{existing['id']}",
            json={"display_name": display_name, "options": options},
        )
        return str(existing["id"])

    async def disable_connection(self, org_id: str, connection_id: str) -> None:
        try:
            await self.call(
                "DELETE", f"/organizations/{org_id}/enabled_connections/{connection_id}"
            )
        except ManagementError as error:
            if error.status != 404:
                raise

    async def role_id(self, name: str) -> str:
        if name not in self._role_ids:
            roles = await self.call("GET", "/roles", params={"name_filter": name})
            items = _listed(roles, "roles")
            match = next((r for r in items if r.get("name") == name), None)
            if match is None:
                raise ManagementError(f"no Auth0 role named {name!r}", status=404)
            self._role_ids[name] = str(match["id"])
        return self._role_ids[name]

    async def member_role_ids(self, org_id: str, user_id: str) -> set[str]:
        roles = await self.call("GET", f"/organizations/{org_id}/members/{quote(user_id)}/roles")
        items = _listed(roles, "roles")
        return {str(r["id"]) for r in items}

    async def add_member(self, org_id: str, user_id: str) -> None:
        await self.call("POST", f"/organizations/{org_id}/members", json={"members": [user_id]})

    async def remove_member(self, org_id: str, user_id: str) -> None:
        await self.call("DELETE", f"/organizations/{org_id}/members", json={"members": [user_id]})

    async def set_member_roles(self, org_id: str, user_id: str, role_names: list[str]) -> None:
        wanted = {await self.role_id(name) for name in role_names}
        current = await self.member_role_ids(org_id, user_id)
        path = f"/organizations/{org_id}/members/{quote(user_id)}/roles"
        if stale := sorted(current - wanted):
            await self.call("DELETE", path, json={"roles": stale})
        if missing := sorted(wanted - current):
            await self.call("POST", path, json={"roles": missing})

    async def find_invitation(
        self,
        org_id: str,
        app_invitation_id: str,
        *,
        created_since: datetime.datetime | None = None,
    ) -> dict[str, Any] | None:
        """The invitation created at Auth0 for `app_invitation_id` (as its app metadata says),
        for the rare run that cannot know whether an earlier one created it: its answer was
        never recorded. Normally the id Auth0 returned is on the invitation's row.

        Auth0 lists invitations newest first ("sort ... Defaults to created_at:-1", Get
        invitations to an organization), so the search stops at the first one created before
        `created_since`; and it never asks beyond the 1,000 records offset pagination can
        reach, where Auth0 answers 400."""
        page = 0
        while (page + 1) * PER_PAGE <= PAGING_WINDOW:
            items = _listed(
                await self.call(
                    "GET",
                    f"/organizations/{org_id}/invitations",
                    params={"page": page, "per_page": PER_PAGE, "sort": "created_at:-1"},
                ),
                "invitations",
            )
            for item in items:
                if (item.get("app_metadata") or {}).get("saas_invitation_id") == app_invitation_id:
                    return item
            if len(items) < PER_PAGE or (
                created_since is not None and _created_before(items[-1], created_since)
            ):
                return None
            page += 1
        raise ManagementError(
            f"more than {PAGING_WINDOW} invitations were created at Auth0 since this one may "
            "have been: it cannot be looked up there"
        )

    async def create_invitation(
        self,
        *,
        org_id: str,
        app_invitation_id: str,
        inviter_name: str,
        email: str,
        role_names: list[str],
        ttl_seconds: int,
    ) -> dict[str, Any]:
        return await self.call(
            "POST",
            f"/organizations/{org_id}/invitations",
            json={
                "inviter": {"name": inviter_name[:300] or "An administrator"},
                "invitee": {"email": email},
                "client_id": self.settings.auth0_client_id,
                "roles": [await self.role_id(name) for name in role_names],
                "ttl_sec": ttl_seconds,
                "send_invitation_email": True,
                "app_metadata": {"saas_invitation_id": app_invitation_id},
            },
        )

    async def delete_invitation(self, org_id: str, invitation_id: str) -> None:
        try:
            await self.call("DELETE", f"/organizations/{org_id}/invitations/{invitation_id}")
        except ManagementError as error:
            if error.status != 404:  # already gone is what we wanted
                raise

    async def revoke_session(self, session_id: str) -> None:
        """Revoke an Auth0 session (the `sid` of an ID token) and its refresh tokens: "Revokes
        a session by ID and all associated refresh tokens", POST /api/v2/sessions/{id}/revoke,
        202 "Session deletion request accepted", scope `delete:sessions`, id at most 50
        characters (https://auth0.com/docs/api/management/v2/sessions/revoke-session; an
        Enterprise-plan feature, https://auth0.com/docs/manage-users/sessions/manage-user-sessions-with-auth0-management-api).
        A session already gone (404: expired, signed out) is what was wanted."""
        try:
            await self.call("POST", f"/sessions/{quote(session_id, safe='')}/revoke")
        except ManagementError as error:
            if error.status != 404:
                raise


def _created_before(item: dict[str, Any], moment: datetime.datetime) -> bool:
    try:
        created = datetime.datetime.fromisoformat(str(item.get("created_at")))
    except ValueError:
        return False
    if created.tzinfo is None:
        created = created.replace(tzinfo=datetime.UTC)
    return created < moment


def _listed(body: Any, key: str) -> list[dict[str, Any]]:
    """Auth0 lists come bare, or wrapped as {key: [...], "total": ...} with include_totals."""
    items = body.get(key, []) if isinstance(body, dict) else body
    return list(items or [])


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message") or body.get("error") or body)[:300]
