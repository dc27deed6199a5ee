"""Supabase-native security: row level security, revoked Data API privileges, pinned search_path."""

from pgqueue_enricher.schema.migrations import revision_script

revision, down_revision, upgrade, downgrade = revision_script(__file__)
