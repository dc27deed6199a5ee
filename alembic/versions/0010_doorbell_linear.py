"""The update doorbell in linear time (no join of transition tables).

The SQL lives in sql/migrations/0010_doorbell_linear.sql, frozen as released; this revision
only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0010_doorbell_linear.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0010_doorbell_linear.sql", "downgrade")
