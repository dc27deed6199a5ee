"""model switch: the embedding switch's state row and shadow vectors.

The SQL lives in sql/ (migrations/0015_model_switch.sql); this revision only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0015"
down_revision = "0012"  # LEAD: down_revision becomes "0014" at merge
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0015_model_switch.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0015_model_switch.sql", "downgrade")
