"""queue bookkeeping columns and partial indexes.

The SQL lives in sql/ (migrations/0003_queue_bookkeeping.sql); this revision only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0003_queue_bookkeeping.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0003_queue_bookkeeping.sql", "downgrade")
