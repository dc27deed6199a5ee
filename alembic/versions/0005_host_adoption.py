"""Adopting a host database that already has its own V3 (Maestro's v3_schema_001).

The SQL lives in sql/migrations/0005_host_adoption.sql, frozen as released, after the
adoption helpers it shares with 0002; this revision only applies them.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/adoption_helpers.sql", "upgrade")
    apply_sql("migrations/0005_host_adoption.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0005_host_adoption.sql", "downgrade")
