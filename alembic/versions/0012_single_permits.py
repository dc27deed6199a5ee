"""Permits of one call: the permit function's own path for a batch of one call."""

from pgqueue_enricher.schema.migrations import revision_script

revision, down_revision, upgrade, downgrade = revision_script(__file__)
