"""SQL API: doorbell trigger, experience seeding, requeue function.

The SQL lives in sql/migrations/0004_sql_api.sql, frozen as released; this revision only
applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0004_sql_api.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0004_sql_api.sql", "downgrade")
