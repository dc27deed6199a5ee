"""SQL API: doorbell trigger, experience seeding, requeue function.

The SQL lives in sql/ (doorbell.sql experience.sql requeue.sql); this revision only applies it.
"""

from pgqueue_enricher.migrations import apply_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("doorbell.sql", "upgrade")
    apply_sql("experience.sql", "upgrade")
    apply_sql("requeue.sql", "upgrade")


def downgrade() -> None:
    apply_sql("requeue.sql", "downgrade")
    apply_sql("experience.sql", "downgrade")
    apply_sql("doorbell.sql", "downgrade")
