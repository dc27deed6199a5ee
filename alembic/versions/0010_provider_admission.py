"""Provider admission: the fleet-wide gate and pause per provider."""

from pgqueue_enricher.schema.migrations import revision_script

revision, down_revision, upgrade, downgrade = revision_script(__file__)
