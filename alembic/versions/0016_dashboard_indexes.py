"""dashboard indexes: complete rows by recency, for completions per hour and recent costs.

The SQL lives in sql/ (migrations/0016_dashboard_indexes.sql); this revision only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0016"
down_revision = "0012"  # LEAD: down_revision becomes "0015" at merge
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0016_dashboard_indexes.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0016_dashboard_indexes.sql", "downgrade")
