"""keyset member lists: member_count, (value, id) indexes, trigram search

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:40:00+00:00

- `organizations.member_count`, filled from `memberships` here and kept by the membership
  service from now on, so a member list never counts its organization's rows.
- Every member-list sort gets an index ending in its tie-breaker, for cursor pagination.
- PostgreSQL only: `pg_trgm` and trigram GIN indexes on users' name and email, which serve the
  member search (`ILIKE '%term%'`). `pg_trgm` is a trusted extension (PostgreSQL 13+): the
  database owner may create it without superuser rights.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _on_postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("member_count", sa.Integer(), server_default="0", nullable=False)
        )
    op.execute(
        "UPDATE organizations SET member_count = "
        "(SELECT count(*) FROM memberships WHERE memberships.organization_id = organizations.id)"
    )

    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_memberships_org_role")
        batch_op.create_index(
            "ix_memberships_org_role", ["organization_id", "role", "id"], unique=False
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_last_login_at")
        batch_op.create_index("ix_users_last_login_id", ["last_login_at", "id"], unique=False)

    if _on_postgresql():
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_users_name_trgm",
            "users",
            ["name"],
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        )
        op.create_index(
            "ix_users_email_trgm",
            "users",
            ["email"],
            postgresql_using="gin",
            postgresql_ops={"email": "gin_trgm_ops"},
        )


def downgrade() -> None:
    if _on_postgresql():
        op.drop_index("ix_users_email_trgm", table_name="users")
        op.drop_index("ix_users_name_trgm", table_name="users")
        # The extension stays: other schemas or objects in the database may use it.

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_last_login_id")
        batch_op.create_index("ix_users_last_login_at", ["last_login_at"], unique=False)

    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_memberships_org_role")
        batch_op.create_index("ix_memberships_org_role", ["organization_id", "role"], unique=False)

    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("member_count")
