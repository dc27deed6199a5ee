"""worker registry: one row per live worker, kept fresh by its heartbeat.

The SQL lives in sql/ (migrations/0009_worker_registry.sql); this revision only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0009_worker_registry.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0009_worker_registry.sql", "downgrade")
