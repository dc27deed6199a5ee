"""provider admission: the fleet-wide gate and pause per provider.

The SQL lives in sql/ (migrations/0007_provider_admission.sql); this revision only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0007"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0007_provider_admission.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0007_provider_admission.sql", "downgrade")
