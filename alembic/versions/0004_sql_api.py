"""SQL API: doorbell trigger, experience seeding, requeue function."""

from pgqueue_enricher.schema.migrations import revision_script

revision, down_revision, upgrade, downgrade = revision_script(__file__)
