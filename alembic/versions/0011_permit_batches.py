"""coalesced permits: the function that reserves a batch of calls' slots with a kept plan.

The SQL lives in sql/ (migrations/0011_permit_batches.sql); this revision only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0011"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0011_permit_batches.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0011_permit_batches.sql", "downgrade")
