"""V3 schema foundation: enrichment columns, experience_files, sessions.

The SQL lives in sql/ (migrations/0002_v3_foundation.sql); this revision only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/adoption_helpers.sql", "upgrade")
    apply_sql("migrations/0002_v3_foundation.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0002_v3_foundation.sql", "downgrade")
