"""lanes, fair share across projects, and the lane tier state (issue 13).

The SQL lives in sql/ (migrations/0008_scheduling.sql); this revision only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0008"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0008_scheduling.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0008_scheduling.sql", "downgrade")
