"""Supabase-native security: row level security, revoked Data API privileges, pinned search_path.

The SQL lives in sql/ (migrations/0006_supabase_security.sql); this revision only applies it.
"""

from pgqueue_enricher.schema.migrations import apply_sql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("migrations/0006_supabase_security.sql", "upgrade")


def downgrade() -> None:
    apply_sql("migrations/0006_supabase_security.sql", "downgrade")
