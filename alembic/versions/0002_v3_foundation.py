"""V3 schema foundation: enrichment columns, experience_files, sessions."""

from pgqueue_enricher.schema.migrations import revision_script

revision, down_revision, upgrade, downgrade = revision_script(__file__)
