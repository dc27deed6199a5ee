"""Cross-references: parse_cross_reference, normalise_sheet_id and the view of resolved links."""

from pgqueue_enricher.schema.migrations import revision_script

revision, down_revision, upgrade, downgrade = revision_script(__file__)
