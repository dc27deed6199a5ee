"""Adopting a host database that already has its own V3 (Maestro's v3_schema_001)."""

from pgqueue_enricher.schema.migrations import revision_script

revision, down_revision, upgrade, downgrade = revision_script(__file__)
