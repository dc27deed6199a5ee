-- Revision 0016 (frozen): an index for what the operators' dashboard reads about completed rows.
-- The overview counts completions per hour and the projects page sums the estimated cost of the
-- last 24 hours and 7 days; both ask for complete rows by recency. Without this index each
-- would read every complete row (most of the table). Partial, so it holds only complete rows,
-- and on updated_at, the column `status` already uses for "completed in the last hour".

-- name: upgrade
CREATE INDEX IF NOT EXISTS idx_pointers_enrichment_completed
    ON pointers (updated_at) WHERE enrichment_status = 'complete';
COMMENT ON INDEX idx_pointers_enrichment_completed IS 'pgqueue-enricher: serves the dashboard''s recent completions';

-- name: downgrade
DROP INDEX IF EXISTS idx_pointers_enrichment_completed;
