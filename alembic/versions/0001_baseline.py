"""baseline Maestro tables, created only when absent.

The SQL lives in sql/ (migrations/0001_baseline.sql); this revision only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0001_baseline.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0001_baseline.sql", "downgrade")
