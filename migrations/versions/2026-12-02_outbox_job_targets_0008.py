"""outbox job targets: each job records the organization and the object it is for

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 01:00:00+00:00

The pages that change an object Auth0 mirrors (the SSO connection, the organization, an
invitation) show its sync state (pending, in step, failed and why) from its latest jobs,
found by (organization_id, target_type, target_id) instead of by the JSON payload. Jobs
written before this revision have no target and are shown nowhere but the operator console.
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organization_id", GUID(length=16), nullable=True))
        batch_op.add_column(sa.Column("target_type", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("target_id", GUID(length=16), nullable=True))
        batch_op.create_index(
            "ix_outbox_jobs_target", ["organization_id", "target_type", "target_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_jobs_target")
        batch_op.drop_column("target_id")
        batch_op.drop_column("target_type")
        batch_op.drop_column("organization_id")
