-- Queue bookkeeping on pointers: attempts, last error, lease and earliest retry time, and
-- the partial indexes that keep the claim and the lease rescue cheap on a table that is
-- mostly `complete`. What this revision adds is tagged with a comment starting
-- 'pgqueue-enricher' (as 0002 does), so that downgrade removes exactly that and leaves any
-- column or index of the same name that another tool made first.

-- name: upgrade
CREATE OR REPLACE FUNCTION pg_temp.pgqe_has_pointers_column(wanted text) RETURNS boolean
LANGUAGE sql AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = 'pointers'::regclass AND attname = wanted AND NOT attisdropped
    )
$$;

DO $$
BEGIN
    IF NOT pg_temp.pgqe_has_pointers_column('enrichment_attempts') THEN
        ALTER TABLE pointers ADD COLUMN enrichment_attempts integer NOT NULL DEFAULT 0;
        COMMENT ON COLUMN pointers.enrichment_attempts IS 'pgqueue-enricher: attempts spent, given back on a graceful stop';
    END IF;
    IF NOT pg_temp.pgqe_has_pointers_column('enrichment_error') THEN
        ALTER TABLE pointers ADD COLUMN enrichment_error text;
        COMMENT ON COLUMN pointers.enrichment_error IS 'pgqueue-enricher: last failure, a sentence a person can act on';
    END IF;
    IF NOT pg_temp.pgqe_has_pointers_column('enrichment_locked_by') THEN
        ALTER TABLE pointers ADD COLUMN enrichment_locked_by text;
        COMMENT ON COLUMN pointers.enrichment_locked_by IS 'pgqueue-enricher: worker holding the lease';
    END IF;
    IF NOT pg_temp.pgqe_has_pointers_column('enrichment_locked_until') THEN
        ALTER TABLE pointers ADD COLUMN enrichment_locked_until timestamptz;
        COMMENT ON COLUMN pointers.enrichment_locked_until IS 'pgqueue-enricher: end of the lease';
    END IF;
    IF NOT pg_temp.pgqe_has_pointers_column('enrichment_run_after') THEN
        ALTER TABLE pointers ADD COLUMN enrichment_run_after timestamptz;
        COMMENT ON COLUMN pointers.enrichment_run_after IS 'pgqueue-enricher: earliest retry time';
    END IF;
    IF to_regclass('idx_pointers_enrichment_claim') IS NULL THEN
        CREATE INDEX idx_pointers_enrichment_claim
            ON pointers (created_at, id) WHERE enrichment_status = 'pending';
        COMMENT ON INDEX idx_pointers_enrichment_claim IS 'pgqueue-enricher: serves the claim';
    END IF;
    IF to_regclass('idx_pointers_enrichment_lease') IS NULL THEN
        CREATE INDEX idx_pointers_enrichment_lease
            ON pointers (enrichment_locked_until) WHERE enrichment_status = 'processing';
        COMMENT ON INDEX idx_pointers_enrichment_lease IS 'pgqueue-enricher: serves the lease rescue';
    END IF;
END
$$;

-- name: downgrade
DO $$
DECLARE
    found record;
BEGIN
    FOR found IN
        SELECT c.relname FROM pg_class AS c
        WHERE c.relname IN ('idx_pointers_enrichment_claim', 'idx_pointers_enrichment_lease')
          AND c.relkind = 'i' AND obj_description(c.oid, 'pg_class') LIKE 'pgqueue-enricher%'
    LOOP
        EXECUTE format('DROP INDEX %I', found.relname);
    END LOOP;
    FOR found IN
        SELECT attname FROM pg_attribute
        WHERE attrelid = 'pointers'::regclass AND attnum > 0 AND NOT attisdropped
          AND attname IN ('enrichment_attempts', 'enrichment_error', 'enrichment_locked_by',
                          'enrichment_locked_until', 'enrichment_run_after')
          AND col_description(attrelid, attnum) LIKE 'pgqueue-enricher%'
    LOOP
        EXECUTE format('ALTER TABLE pointers DROP COLUMN %I', found.attname);
    END LOOP;
END
$$;
