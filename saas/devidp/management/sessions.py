"""Auth0 sessions (the `sid` of ID tokens): deleting or revoking one ends the browser's single
sign-on session here, so its next /authorize asks for the password again.

Auth0: "Revokes a session by ID and all associated refresh tokens", POST
/api/v2/sessions/{id}/revoke, and "Delete a session by ID", DELETE /api/v2/sessions/{id}; both
answer "Session deletion request accepted" (202), need `delete:sessions`, and take an id of at
most 50 characters (https://auth0.com/docs/api/management/v2/sessions/revoke-session,
https://auth0.com/docs/manage-users/sessions/manage-user-sessions-with-auth0-management-api).
Session management is an Enterprise-plan feature at Auth0; the dev IdP always has it.
"""

from __future__ import annotations

from litestar import Response, delete, post
from litestar.params import FromPath
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from saas.devidp.context import Db
from saas.devidp.errors import ManagementError
from saas.devidp.management.common import not_found
from saas.devidp.models import IdpSession, RefreshToken, TokenFamily

MAX_ID_LENGTH = 50


async def _session(db: AsyncSession, session_id: str) -> IdpSession:
    if not 1 <= len(session_id) <= MAX_ID_LENGTH:
        raise ManagementError(
            400,
            f"Path validation error: 'String is too long ({len(session_id)} chars), maximum "
            f"{MAX_ID_LENGTH}' on property id (ID of the session to revoke).",
            "invalid_uri",
        )
    session = await db.get(IdpSession, session_id)
    if session is None:
        raise not_found("The session does not exist.", "inexistent_session")
    return session


@post("/sessions/{session_id:str}/revoke", opt={"scopes": ("delete:sessions",)}, status_code=202)
async def revoke_session(session_id: FromPath[str], db: Db) -> Response[bytes]:
    session = await _session(db, session_id)
    # Its refresh tokens, and the access tokens issued with them (/userinfo checks the family).
    families = select(RefreshToken.family_id).where(RefreshToken.session_id == session.id)
    await db.execute(update(TokenFamily).where(TokenFamily.id.in_(families)).values(revoked=True))
    await db.delete(session)
    await db.commit()
    return Response(b"", status_code=202)


@delete("/sessions/{session_id:str}", opt={"scopes": ("delete:sessions",)}, status_code=202)
async def delete_session(session_id: FromPath[str], db: Db) -> Response[bytes]:
    await db.delete(await _session(db, session_id))
    await db.commit()
    return Response(b"", status_code=202)
