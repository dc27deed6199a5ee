"""cross-references: parse_cross_reference, normalise_sheet_id and the view of resolved links.

The SQL lives in sql/ (migrations/0014_cross_references.sql); this revision only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0014"
down_revision = "0012"  # LEAD: down_revision becomes "0013" at merge
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0014_cross_references.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0014_cross_references.sql", "downgrade")
