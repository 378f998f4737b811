"""sso connection secrets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:25:11.497709+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, ORA_JSONB, DateTimeUTC, JsonB
from alembic import op
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))

# Autogenerate renders Advanced Alchemy types as sa.<Type>; make those names resolve.
sa.GUID = GUID  # type: ignore[attr-defined]
sa.DateTimeUTC = DateTimeUTC  # type: ignore[attr-defined]
sa.JsonB = JsonB  # type: ignore[attr-defined]
sa.ORA_JSONB = ORA_JSONB  # type: ignore[attr-defined]

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enterprise_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret_ciphertext", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "assign_membership_on_login",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("enterprise_connections", schema=None) as batch_op:
        batch_op.drop_column("assign_membership_on_login")
        batch_op.drop_column("secret_ciphertext")
