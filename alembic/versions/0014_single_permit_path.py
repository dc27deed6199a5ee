"""One permit path: one function decides the permit of one call; the batch function goes."""

from pgqueue_enricher.schema.migrations import apply_sql, revision_script

revision, down_revision, upgrade, _ = revision_script(__file__)


def downgrade() -> None:
    apply_sql("migrations/0014_single_permit_path.sql", "downgrade")
    # Revision 0012's function, as 0011 created and granted it and 0012 replaced its body.
    apply_sql("migrations/0011_permit_batches.sql", "upgrade")
    apply_sql("migrations/0012_single_permits.sql", "upgrade")
