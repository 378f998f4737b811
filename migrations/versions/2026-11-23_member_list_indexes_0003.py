"""member list indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 13:24:14.587270+00:00
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

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index(
            "ix_memberships_org_created", ["organization_id", "created_at", "id"], unique=False
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index("ix_users_last_login_at", ["last_login_at"], unique=False)
        batch_op.create_index("ix_users_name_id", ["name", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_name_id")
        batch_op.drop_index("ix_users_last_login_at")

    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_memberships_org_created")
