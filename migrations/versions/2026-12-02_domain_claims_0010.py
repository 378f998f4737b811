"""domain claims: unverified domains no longer block their real owner

Revision ID: 0010
Revises: 0009_security_policy
Create Date: 2026-12-02 06:30:00+00:00

`organization_domains.domain` was globally unique, so any tenant admin could claim an
unverified domain (bigcorp.com) and thereby keep its real owner from ever adding it. Claiming
proves nothing; only a verified domain routes sign-ins. Now:

- `uq_organization_domains_org_domain`: a domain once per organization;
- `uq_organization_domains_verified_domain`, a partial unique index on (domain) where
  `verified_at IS NOT NULL`: at most one organization has verified a domain, decided by the
  database when two verifications race.

Every existing row already satisfies both (the old constraint was stricter), so nothing is
rewritten on the way up.

Downgrade brings the global constraint back. Rows it would refuse (the same domain claimed by
several organizations) are resolved first: the verified claim stays, or where none is verified
the oldest; the other, unverified, claims are deleted. They routed nothing, and their owners
can claim the domain again after the next upgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009_security_policy"
branch_labels = None
depends_on = None

VERIFIED = "verified_at IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("organization_domains", schema=None) as batch_op:
        batch_op.drop_constraint("uq_organization_domains_domain", type_="unique")
        batch_op.create_unique_constraint(
            "uq_organization_domains_org_domain", ["organization_id", "domain"]
        )
        batch_op.create_index(
            "uq_organization_domains_verified_domain",
            ["domain"],
            unique=True,
            sqlite_where=sa.text(VERIFIED),
            postgresql_where=sa.text(VERIFIED),
        )


def downgrade() -> None:
    # Keep one claim per domain: the verified one (there is at most one), else the oldest
    # (ties by id). The others are unverified and route nothing.
    op.execute(
        "DELETE FROM organization_domains WHERE verified_at IS NULL AND EXISTS ("
        " SELECT 1 FROM organization_domains AS kept"
        " WHERE kept.domain = organization_domains.domain"
        " AND kept.id <> organization_domains.id"
        " AND (kept.verified_at IS NOT NULL"
        "  OR kept.created_at < organization_domains.created_at"
        "  OR (kept.created_at = organization_domains.created_at"
        "   AND kept.id < organization_domains.id)))"
    )
    with op.batch_alter_table("organization_domains", schema=None) as batch_op:
        batch_op.drop_index("uq_organization_domains_verified_domain")
        batch_op.drop_constraint("uq_organization_domains_org_domain", type_="unique")
        batch_op.create_unique_constraint("uq_organization_domains_domain", ["domain"])
