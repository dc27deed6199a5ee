"""Model switch: the embedding switch's state row and shadow vectors."""

from pgqueue_enricher.schema.migrations import revision_script

revision, down_revision, upgrade, downgrade = revision_script(__file__)
