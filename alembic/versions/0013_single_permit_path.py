"""one permit path: one function decides the permit of one call; the batch function goes.

The SQL lives in sql/ (migrations/0013_single_permit_path.sql); this revision only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0013_single_permit_path.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0013_single_permit_path.sql", "downgrade")
    # Revision 0012's function, as 0011 created and granted it and 0012 replaced its body.
    apply_sql("migrations/0011_permit_batches.sql", "upgrade")
    apply_sql("migrations/0012_single_permits.sql", "upgrade")
