"""removed members: an administrator's removal is not undone by just-in-time provisioning

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 07:20:00+00:00

An organization with just-in-time provisioning adds anyone who signs in with a verified
domain of it. A removed person's next sign-in made them a member again. `removed_members`
holds one row per (organization, person) an administrator removed, with the person's address;
just-in-time provisioning refuses that user and that address (the same mailbox through another
connection is another user row), and accepting a new invitation deletes the row.

Nothing existing is rewritten; downgrade drops the table (removals recorded since are
forgotten, as they were before).
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "removed_members",
        sa.Column("id", GUID(length=16), nullable=False),
        sa.Column("organization_id", GUID(length=16), nullable=False),
        sa.Column("user_id", GUID(length=16), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_removed_members_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_removed_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_removed_members")),
        sa.UniqueConstraint("organization_id", "user_id", name="uq_removed_members_org_user"),
    )
    with op.batch_alter_table("removed_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_removed_members_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "ix_removed_members_org_email", ["organization_id", "email"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("removed_members", schema=None) as batch_op:
        batch_op.drop_index("ix_removed_members_org_email")
        batch_op.drop_index(batch_op.f("ix_removed_members_user_id"))
    op.drop_table("removed_members")
