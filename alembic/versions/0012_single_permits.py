"""permits of one call: the permit function's own path for a batch of one call.

The SQL lives in sql/ (migrations/0012_single_permits.sql); this revision only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0012_single_permits.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0012_single_permits.sql", "downgrade")
