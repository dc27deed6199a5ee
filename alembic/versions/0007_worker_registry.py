"""Worker registry: one row per live worker, kept fresh by its heartbeat."""

from pgqueue_enricher.schema.migrations import revision_script

revision, down_revision, upgrade, downgrade = revision_script(__file__)
