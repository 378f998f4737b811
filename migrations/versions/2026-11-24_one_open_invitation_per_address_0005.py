"""one open invitation per address: a partial unique index

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 09:00:00+00:00

`uq_invitations_open_email` on invitations (organization_id, lower(email)) where neither
`accepted_at` nor `revoked_at` is set: two racing invitations of one address cannot both be
written. Rows that already break the rule (an earlier race, or an expired invitation followed by
a new one) are closed first, keeping each address's newest open invitation.
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OPEN = "accepted_at IS NULL AND revoked_at IS NULL"


def upgrade() -> None:
    close_older = sa.text(
        "UPDATE invitations SET revoked_at = :now "
        "WHERE accepted_at IS NULL AND revoked_at IS NULL AND EXISTS ("
        " SELECT 1 FROM invitations AS newer"
        " WHERE newer.organization_id = invitations.organization_id"
        " AND lower(newer.email) = lower(invitations.email)"
        " AND newer.accepted_at IS NULL AND newer.revoked_at IS NULL"
        " AND (newer.created_at > invitations.created_at"
        "  OR (newer.created_at = invitations.created_at AND newer.id > invitations.id)))"
    ).bindparams(sa.bindparam("now", type_=DateTimeUTC(timezone=True)))
    op.get_bind().execute(close_older, {"now": datetime.datetime.now(datetime.UTC)})

    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.create_index(
            "uq_invitations_open_email",
            ["organization_id", sa.text("lower(email)")],
            unique=True,
            sqlite_where=sa.text(OPEN),
            postgresql_where=sa.text(OPEN),
        )


def downgrade() -> None:
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_index("uq_invitations_open_email")
