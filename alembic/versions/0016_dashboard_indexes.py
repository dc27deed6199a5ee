"""Dashboard indexes: completed rows by when they completed, for completions per hour and costs."""

from pgqueue_enricher.schema.migrations import revision_script

revision, down_revision, upgrade, downgrade = revision_script(__file__)
