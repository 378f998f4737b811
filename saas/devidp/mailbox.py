"""A development mailbox: emails the IdP would send (invitations) are kept here to read.

``/__dev/mailbox`` lists them for a person, ``/__dev/mailbox.json`` for a test.
"""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.response import Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.devidp.context import Db
from saas.devidp.ids import iso8601
from saas.devidp.models import MailboxMessage


def deliver(
    db: AsyncSession, *, recipient: str, subject: str, body: str, link: str | None, now: float
) -> None:
    db.add(
        MailboxMessage(recipient=recipient, subject=subject, body=body, link=link, created_at=now)
    )


def _as_json(message: MailboxMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "to": message.recipient,
        "subject": message.subject,
        "body": message.body,
        "link": message.link,
        "created_at": iso8601(message.created_at),
    }


async def _messages(db: AsyncSession) -> list[MailboxMessage]:
    return list(await db.scalars(select(MailboxMessage).order_by(MailboxMessage.id.desc())))


@get("/__dev/mailbox")
async def mailbox_page(db: Db) -> Template:
    messages = [_as_json(m) for m in await _messages(db)]
    return Template(template_name="mailbox.html", context={"messages": messages})


@get("/__dev/mailbox.json")
async def mailbox_json(db: Db) -> Response[Any]:
    return Response(
        {"messages": [_as_json(m) for m in await _messages(db)]},
        headers={"Cache-Control": "no-store"},
    )
