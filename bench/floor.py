"""The floor: the members fragment's real work, and nothing else, in one bare Litestar handler.

`GET /o/<slug>/members` (with `HX-Request`) does here exactly what the app's fragment must do,
with none of the app's machinery around it:
- read the session from the app's Redis session store, renewing its idle expiry as the app's
  `renew_on_access` sessions do, and check it (signed in, this organization active in it, within
  the organization's idle and absolute lifetimes, multi-factor done where required); write it
  back when its last-seen second moved (the idle timeout needs it);
- run the three statements the app runs for the page, verbatim as SQLAlchemy compiles them
  (captured from the app by `bench.run` before the floor starts, in the file named by
  `BENCH_FLOOR_STATEMENTS`), through raw asyncpg on a plain pool: the viewer's user,
  organization and membership (read on every request: a removal counts on the next one), the
  page of 26 rows (25 shown, one to know there is a next page), and the rows' Auth0 sync state;
- build the same view model (`saas.members.views.MemberListing`, `member_row`: what the viewer
  may do to each row) from plain records instead of ORM entities, and render the same Jinja
  templates (`partials/members_results.html` with its row macro) with the same filters;
- answer with the same headers: the security headers, `Vary`, `HX-Push-Url`, the session cookie
  and, when the request has none, a fresh CSRF cookie whose token the forms carry.

What it leaves out is what the page does not need (the ORM, the dependency graph, the guard and
middleware layers, logging); `bench.run` checks before timing that its body is the app's body
byte for byte, CSRF tokens aside, so it cannot quietly do less. Run by `bench.run` under the
same uvicorn settings as the app, configured by the app's own environment.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Litestar, Request, Response, get
from litestar.datastructures import Cookie
from litestar.middleware.csrf import generate_csrf_token
from litestar.stores.base import Store

from saas.app import TEMPLATES_DIR
from saas.auth0.sync_state import _state
from saas.config import load_settings
from saas.db.keyset import Cursor
from saas.login.sessions import (
    CREATED_AT,
    LAST_SEEN_AT,
    ORGANIZATION_ID,
    SESSION_STORE,
    USER_ID,
    create_stores,
    session_cookie_name,
)
from saas.members.services import MemberPage, PageStart
from saas.members.views import MemberListing, member_row
from saas.security.services import effective_timeouts
from saas.tenancy.context import TenantContext
from saas.web.dates import FILTERS as DATE_FILTERS
from saas.web.htmx import VARY
from saas.web.security import content_security_policy, create_csrf_config

PAGE_SIZE = 25
ROUTES = {
    "members.change_role": "/o/{slug}/members/{member_id}/role",
    "members.remove": "/o/{slug}/members/{member_id}/remove",
    "members.transfer_ownership": "/o/{slug}/members/{member_id}/transfer-ownership",
}
# Where `bench.run` leaves the statements it captured from the app, one list per page.
STATEMENTS_FILE = "BENCH_FLOOR_STATEMENTS"
# The sync-state statement's list of row ids: one placeholder per row shown.
SYNC_FIRST_ID = 7  # after the statement's six other parameters
_ID_LIST = re.compile(r"IN \((\$\d+::UUID(?:, )?)+\)")


class Record:
    """Attribute access on a row, which is all the view model and the templates ask of it."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...


@dataclass(frozen=True)
class Statement:
    """One of the app's statements, verbatim, and which of its result columns belong to which
    table (read off its select list), so a joined row splits back into one record per table."""

    sql: str
    tables: list[tuple[str, list[str]]]

    @classmethod
    def of(cls, sql: str) -> Statement:
        selected = sql[len("SELECT ") : sql.index("\nFROM ")]
        tables: list[tuple[str, list[str]]] = []
        for item in selected.split(", "):
            table, _, column = item.split(" AS ")[0].strip().partition(".")
            if tables and tables[-1][0] == table:
                tables[-1][1].append(column)
            else:
                tables.append((table, [column]))
        return cls(sql=sql, tables=tables)

    def split(self, record: asyncpg.Record) -> list[Record]:
        values = list(record.values())
        out, at = [], 0
        for _, columns in self.tables:
            out.append(Record(dict(zip(columns, values[at : at + len(columns)], strict=True))))
            at += len(columns)
        return out


def load_statements() -> dict[str, Statement]:
    """The app's statements for page 1 and a page after a cursor: the viewer, the page of rows,
    the rows' sync state. Taken from the app itself at each run, so the floor cannot drift from
    what the app runs (a new column, a changed join)."""
    path = os.environ.get(STATEMENTS_FILE)
    if not path:
        raise SystemExit(f"bench/floor.py is started by bench.run, which sets {STATEMENTS_FILE}")
    captured: dict[str, list[str]] = json.loads(Path(path).read_text())
    first, after = captured["page_1"], captured["page_after"]
    if len(first) != 3 or len(after) != 3 or first[0] != after[0]:
        raise SystemExit(
            "the members fragment no longer runs the three statements the floor reproduces "
            f"(viewer, page, sync state): {len(first)} and {len(after)}; update bench/floor.py"
        )
    ids = _ID_LIST.search(first[2])
    if ids is None or not ids[0].startswith(f"IN (${SYNC_FIRST_ID}::UUID"):
        raise SystemExit(
            f"the sync-state statement's ids no longer start at ${SYNC_FIRST_ID}; "
            "update bench/floor.py"
        )
    sync = first[2][: ids.start()] + "IN ({ids})" + first[2][ids.end() :]
    return {
        "tenant": Statement.of(first[0]),
        "page": Statement.of(first[1]),
        "page_after": Statement.of(after[1]),
        "sync": Statement(sql=sync, tables=[]),
    }


STATEMENTS = load_statements()
settings = load_settings(outbox_worker_enabled=False)
csrf_config = create_csrf_config(settings)
cookie_name = session_cookie_name(settings)
store: Store = create_stores(settings)[SESSION_STORE]
jinja = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(), auto_reload=False
)
jinja.filters.update(DATE_FILTERS)
jinja.globals["url_for"] = lambda name, **params: ROUTES[name].format(**params)
fragment_template = jinja.get_template("partials/members_results.html")
security_headers = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "content-security-policy": content_security_policy(settings),
    "cache-control": "no-store",
}
if settings.secure_cookies:
    security_headers["strict-transport-security"] = "max-age=63072000; includeSubDomains"
pool: asyncpg.Pool | None = None


async def open_pool() -> None:
    global pool
    url = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
    pool = await asyncpg.create_pool(url, min_size=2, max_size=10)


async def close_pool() -> None:
    if pool is not None:
        await pool.close()


def refused(status: int) -> Response[str]:
    return Response("", status_code=status, headers=security_headers)


@get("/o/{slug:str}/members", sync_to_thread=False)
async def members_fragment(request: Request[Any, Any, Any], slug: str) -> Response[str]:
    session_id = request.cookies.get(cookie_name)
    raw = (
        await store.get(session_id, renew_for=settings.session_idle_timeout_seconds)
        if session_id
        else None
    )
    session = msgspec.json.decode(raw) if raw else {}
    user_id = session.get(USER_ID)
    if user_id is None:
        return refused(303)
    assert pool is not None
    async with pool.acquire() as conn:
        found = await conn.fetchrow(STATEMENTS["tenant"].sql, slug, UUID(user_id))
        if found is None:
            return refused(303)
        user, organization, membership = STATEMENTS["tenant"].split(found)
        if organization.id is None or membership.id is None:
            return refused(404)
        if organization.status != "active":
            return refused(403)
        if session.get(ORGANIZATION_ID) != str(organization.id):
            return refused(303)
        now = time.time()
        idle, absolute = effective_timeouts(organization, settings)  # type: ignore[arg-type]
        if (
            now - session.get(LAST_SEEN_AT, 0) > idle
            or now - session.get(CREATED_AT, 0) > absolute
            or organization.require_mfa
        ):
            return refused(303)  # the bench's organization requires no MFA
        if session.get(LAST_SEEN_AT) != int(now):
            # The idle timeout needs when the session was last seen: written back when it
            # moved, as the app's session-timeout middleware has it written.
            session[LAST_SEEN_AT] = int(now)
            await store.set(
                session_id or "",
                msgspec.json.encode(session),
                expires_in=settings.session_idle_timeout_seconds,
            )
        after = request.query_params.get("after")
        if after:
            cursor = Cursor.decode(after)
            page_statement = STATEMENTS["page_after"]
            records = await conn.fetch(
                page_statement.sql, organization.id, cursor.value, cursor.id, PAGE_SIZE + 1
            )
        else:
            page_statement = STATEMENTS["page"]
            records = await conn.fetch(page_statement.sql, organization.id, PAGE_SIZE + 1)
        rows = [(m, u) for m, u in (page_statement.split(r) for r in records)]
        shown, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
        ids = [u.id for _, u in shown]
        placeholders = ", ".join(
            f"${i}::UUID" for i in range(SYNC_FIRST_ID, SYNC_FIRST_ID + len(ids))
        )
        jobs = (
            await conn.fetch(
                STATEMENTS["sync"].sql.format(ids=placeholders),
                "pending",
                1,
                0,
                organization.id,
                "member",
                1,
                *ids,
            )
            if ids
            else []
        )
    sync = {
        job["target_id"]: _state(Record(dict(job)), pending=bool(job["due"]))  # type: ignore[arg-type]
        for job in jobs
    }
    tenant = TenantContext(organization=organization, membership=membership, user=user)  # type: ignore[arg-type]
    first, last = shown[0][1] if shown else None, shown[-1][1] if shown else None
    page = MemberPage(
        rows=shown,  # type: ignore[arg-type]
        start=_start(after),
        previous_cursor=Cursor("name", False, first.name, first.id) if after and first else None,
        next_cursor=Cursor("name", False, last.name, last.id) if more and last else None,
    )
    listing = MemberListing(
        rows=[member_row(tenant, m, u, sync=sync.get(u.id)) for m, u in shown],
        page=page,
        total=organization.member_count,
        q="",
        sort="name",
        descending=False,
        base_url=f"/o/{slug}/members",
        position={"after": after} if after else {},
    )
    csrf_cookie = request.cookies.get(csrf_config.cookie_name)
    token = csrf_cookie or generate_csrf_token(csrf_config.secret)
    body = fragment_template.render(
        tenant=tenant,
        listing=listing,
        fragment=True,
        csrf_input=f'<input type="hidden" name="_csrf_token" value="{token}" />',
    )
    cookies = [
        Cookie(
            key=cookie_name,
            value=session_id or "",
            max_age=settings.session_idle_timeout_seconds,
            path="/",
            secure=settings.secure_cookies,
            httponly=True,
            samesite="lax",
        )
    ]
    if csrf_cookie is None:
        cookies.append(
            Cookie(
                key=csrf_config.cookie_name,
                value=token,
                path=csrf_config.cookie_path,
                secure=csrf_config.cookie_secure,
                httponly=csrf_config.cookie_httponly,
                samesite=csrf_config.cookie_samesite,
            )
        )
    return Response(
        body,
        media_type="text/html",
        headers={
            **security_headers,
            **VARY,
            "hx-push-url": listing.url(),
        },
        cookies=cookies,
    )


def _start(after: str | None) -> PageStart:
    return PageStart.AFTER if after else PageStart.FIRST


@get("/", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(
    route_handlers=[members_fragment, hello],
    on_startup=[open_pool],
    on_shutdown=[close_pool],
    debug=False,
    logging_config=None,
)
