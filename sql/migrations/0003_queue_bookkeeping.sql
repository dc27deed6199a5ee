-- Queue bookkeeping on pointers: attempts, last error, lease and earliest retry time, and
-- the partial indexes that keep the claim and the lease rescue cheap on a table that is
-- mostly `complete`.

-- name: upgrade
ALTER TABLE pointers ADD COLUMN IF NOT EXISTS enrichment_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE pointers ADD COLUMN IF NOT EXISTS enrichment_error text;
ALTER TABLE pointers ADD COLUMN IF NOT EXISTS enrichment_locked_by text;
ALTER TABLE pointers ADD COLUMN IF NOT EXISTS enrichment_locked_until timestamptz;
ALTER TABLE pointers ADD COLUMN IF NOT EXISTS enrichment_run_after timestamptz;

CREATE INDEX IF NOT EXISTS idx_pointers_enrichment_claim
    ON pointers (created_at, id) WHERE enrichment_status = 'pending';
CREATE INDEX IF NOT EXISTS idx_pointers_enrichment_lease
    ON pointers (enrichment_locked_until) WHERE enrichment_status = 'processing';

-- name: downgrade
DROP INDEX IF EXISTS idx_pointers_enrichment_lease;
DROP INDEX IF EXISTS idx_pointers_enrichment_claim;
ALTER TABLE pointers DROP COLUMN IF EXISTS enrichment_run_after;
ALTER TABLE pointers DROP COLUMN IF EXISTS enrichment_locked_until;
ALTER TABLE pointers DROP COLUMN IF EXISTS enrichment_locked_by;
ALTER TABLE pointers DROP COLUMN IF EXISTS enrichment_error;
ALTER TABLE pointers DROP COLUMN IF EXISTS enrichment_attempts;
