"""security policy per organization: required MFA and shorter session timeouts

Revision ID: 0009_security_policy
Revises: 0008
Create Date: 2026-12-02 03:00:00+00:00

Owners require multi-factor sign-in for their organization and shorten its idle and absolute
session timeouts. Null timeouts are the platform's; CHECK constraints keep each within its
range (idle 1 minute to 30 days, absolute 5 minutes to 30 days) and idle within absolute.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_security_policy"
down_revision = "0008"
branch_labels = None
depends_on = None

MAX_POLICY_SECONDS = 30 * 24 * 3600


IDLE_RANGE = (
    "session_idle_timeout_seconds IS NULL OR session_idle_timeout_seconds "
    f"BETWEEN 60 AND {MAX_POLICY_SECONDS}"
)
ABSOLUTE_RANGE = (
    "session_absolute_timeout_seconds IS NULL OR session_absolute_timeout_seconds "
    f"BETWEEN 300 AND {MAX_POLICY_SECONDS}"
)
IDLE_WITHIN_ABSOLUTE = (
    "session_idle_timeout_seconds IS NULL OR session_absolute_timeout_seconds IS NULL "
    "OR session_idle_timeout_seconds <= session_absolute_timeout_seconds"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a CHECK only with its column: a batch rebuild of `organizations` would
        # drop the table, and with it (ON DELETE CASCADE) every row that belongs to one.
        for statement in (
            "ADD COLUMN require_mfa BOOLEAN DEFAULT 0 NOT NULL",
            "ADD COLUMN session_idle_timeout_seconds INTEGER "
            f"CONSTRAINT ck_organizations_session_idle_timeout_range CHECK ({IDLE_RANGE})",
            "ADD COLUMN session_absolute_timeout_seconds INTEGER "
            f"CONSTRAINT ck_organizations_session_absolute_timeout_range CHECK ({ABSOLUTE_RANGE}) "
            f"CONSTRAINT ck_organizations_session_idle_within_absolute "
            f"CHECK ({IDLE_WITHIN_ABSOLUTE})",
        ):
            op.execute(f"ALTER TABLE organizations {statement}")
        return
    op.add_column(
        "organizations",
        sa.Column("require_mfa", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "organizations", sa.Column("session_idle_timeout_seconds", sa.Integer(), nullable=True)
    )
    op.add_column(
        "organizations",
        sa.Column("session_absolute_timeout_seconds", sa.Integer(), nullable=True),
    )
    op.create_check_constraint(
        op.f("ck_organizations_session_idle_timeout_range"), "organizations", IDLE_RANGE
    )
    op.create_check_constraint(
        op.f("ck_organizations_session_absolute_timeout_range"), "organizations", ABSOLUTE_RANGE
    )
    op.create_check_constraint(
        op.f("ck_organizations_session_idle_within_absolute"), "organizations", IDLE_WITHIN_ABSOLUTE
    )


def downgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        for name in (
            op.f("ck_organizations_session_idle_within_absolute"),
            op.f("ck_organizations_session_absolute_timeout_range"),
            op.f("ck_organizations_session_idle_timeout_range"),
        ):
            batch_op.drop_constraint(name, type_="check")
        batch_op.drop_column("session_absolute_timeout_seconds")
        batch_op.drop_column("session_idle_timeout_seconds")
        batch_op.drop_column("require_mfa")
