"""project names are unique within an organization whatever their case

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00+00:00

`uq_projects_org_lower_name` on projects (organization_id, lower(name)) replaces the unique
constraint on (organization_id, name), which let "Roadmap" and "roadmap" both be created by two
racing requests although the service refuses the second. Names that already differ only in
case (such a race, or rows written before the service compared without case) are made
distinct first: each but the oldest gets a " (2)", " (3)", ... suffix.
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import GUID, DateTimeUTC
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MAX_NAME = 120
projects = sa.table(
    "projects",
    sa.column("id", GUID()),
    sa.column("organization_id", GUID()),
    sa.column("name", sa.String()),
    sa.column("created_at", DateTimeUTC()),
)


def _rename_case_variants() -> None:
    bind = op.get_bind()
    # The database's lower(), not Python's: SQLite folds only ASCII letters.
    key = sa.func.lower(projects.c.name).label("name_key")
    rows = bind.execute(
        sa.select(projects.c.id, projects.c.organization_id, projects.c.name, key).order_by(
            projects.c.organization_id, key, projects.c.created_at, projects.c.id
        )
    ).all()
    taken = {(row.organization_id, row.name_key) for row in rows}
    oldest: set[tuple[object, str]] = set()
    for row in rows:
        if (row.organization_id, row.name_key) not in oldest:
            oldest.add((row.organization_id, row.name_key))
            continue
        for n in range(2, len(rows) + 2):
            suffix = f" ({n})"
            candidate = row.name[: MAX_NAME - len(suffix)] + suffix
            candidate_key = str(bind.scalar(sa.select(sa.func.lower(sa.literal(candidate)))))
            if (row.organization_id, candidate_key) not in taken:
                break
        taken.add((row.organization_id, candidate_key))
        bind.execute(projects.update().where(projects.c.id == row.id).values(name=candidate))


def upgrade() -> None:
    _rename_case_variants()
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_constraint("uq_projects_org_name", type_="unique")
    # Its own batch: on SQLite the one above rebuilds the table, which would not carry an
    # expression index over.
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index(
            "uq_projects_org_lower_name",
            ["organization_id", sa.text("lower(name)")],
            unique=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index("uq_projects_org_lower_name")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_projects_org_name", ["organization_id", "name"])
