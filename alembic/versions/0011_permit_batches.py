"""Coalesced permits: the function that reserves a batch of calls' slots with a kept plan."""

from pgqueue_enricher.schema.migrations import revision_script

revision, down_revision, upgrade, downgrade = revision_script(__file__)
