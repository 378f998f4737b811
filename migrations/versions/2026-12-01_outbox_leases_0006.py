"""outbox leases: a job is claimed for a time, and run with no transaction open

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:00:00+00:00

A worker claims a job by writing a lease (`lease_token`, `leased_until`) in a short
transaction, calls Auth0 with none open, and records the result only while the lease is still
its own. A worker that stops mid-call leaves a lease that expires, and the job runs again.
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_token", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("leased_until", DateTimeUTC(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_jobs", schema=None) as batch_op:
        batch_op.drop_column("leased_until")
        batch_op.drop_column("lease_token")
