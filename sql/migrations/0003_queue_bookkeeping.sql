-- Queue bookkeeping on pointers: attempts, last error, lease and earliest retry time, and
-- the partial indexes that keep the claim and the lease rescue cheap on a table that is
-- mostly `complete`. What this revision adds is tagged with a comment starting
-- 'pgqueue-enricher' (as 0002 does), so that downgrade removes exactly that and leaves any
-- column or index of the same name that another tool made first.

-- name: upgrade
DO $$
DECLARE
    wanted record;
BEGIN
    FOR wanted IN
        SELECT * FROM (VALUES
            ('enrichment_attempts', 'integer NOT NULL DEFAULT 0', 'attempts spent, given back on a graceful stop'),
            ('enrichment_error', 'text', 'last failure, a sentence a person can act on'),
            ('enrichment_locked_by', 'text', 'worker holding the lease'),
            ('enrichment_locked_until', 'timestamptz', 'end of the lease'),
            ('enrichment_run_after', 'timestamptz', 'earliest retry time')
        ) AS c (name, definition, note)
    LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_attribute
            WHERE attrelid = 'pointers'::regclass AND attname = wanted.name AND NOT attisdropped
        ) THEN
            EXECUTE format('ALTER TABLE pointers ADD COLUMN %I %s', wanted.name, wanted.definition);
            EXECUTE format('COMMENT ON COLUMN pointers.%I IS %L', wanted.name, 'pgqueue-enricher: ' || wanted.note);
        END IF;
    END LOOP;
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
