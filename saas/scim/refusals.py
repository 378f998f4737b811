"""Refusals of SCIM requests, kept where an organization's admins see them.

A refusal of a request that carried a valid token is kept for the Directory sync page
("recent errors"), and a refused directory change is audited. Both are written in a transaction
of their own once the request's own has rolled back: its writes are never kept
(saas/web/commit.py), and the answer goes out even when the record cannot be written.
"""

from __future__ import annotations

import datetime
from typing import Any
from uuid import UUID

import structlog
from advanced_alchemy.extensions.litestar._utils import get_aa_scope_state
from msgspec import Struct
from sqlalchemy import delete as sql_delete
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.actions import AuditAction
from saas.audit.services import Actor, AuditService
from saas.db.models import DirectorySyncError
from saas.scim.services import DirectoryRefused
from saas.web.errors import SCIM_ERROR_STATE

logger = structlog.get_logger("saas.scim")

BINDING_STATE = "saas.scim.binding"
REFUSAL_STATE = "saas.scim.refusal"
# Refusals kept for the settings page.
ERROR_RETENTION = datetime.timedelta(days=30)


class Binding(Struct):
    """The organization and token a request was authenticated as."""

    organization_id: UUID
    token_id: UUID
    token_name: str


def record_refusals(app: Any) -> Any:
    """Router middleware: a refusal of a request with a valid token is kept for the settings
    page, and a refused directory change is audited, in a transaction of their own once the
    request's own has rolled back (its writes are not kept: saas/web/commit.py)."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        async def send_recording(message: Any) -> None:
            # Not 429s: a client over its limit would otherwise write a row per refusal. Not
            # 503s: the database was contended, and the record would add to it.
            if (
                message["type"] == "http.response.start"
                and message["status"] >= 400
                and message["status"] not in (429, 503)
            ):
                state = scope.get("state", {})
                binding = state.get(BINDING_STATE)
                if isinstance(binding, Binding):
                    try:
                        await _record(scope, binding, message["status"], state)
                    except Exception:  # the answer still goes out; the log says why
                        logger.exception("scim_refusal_not_recorded")
            await send(message)

        await app(scope, receive, send_recording)

    return middleware


async def _record(scope: Any, binding: Binding, status: int, state: dict[str, Any]) -> None:
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
