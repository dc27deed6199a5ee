-- V3 schema foundation: enrichment columns on pointers, experience_files and sessions.
-- Everything this revision adds is tagged with a comment starting 'pgqueue-enricher', so
-- that downgrade removes exactly what this project added and nothing the host app made.

-- name: upgrade
DO $$
BEGIN
    -- The backfill runs only when this migration adds the column: a host app that already
    -- added enrichment_status keeps the statuses it wrote.
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = 'pointers'::regclass AND attname = 'enrichment_status' AND NOT attisdropped
    ) THEN
        ALTER TABLE pointers ADD COLUMN enrichment_status varchar(20) NOT NULL DEFAULT 'pending';
        UPDATE pointers SET enrichment_status = 'complete'
        WHERE description IS NOT NULL AND embedding IS NOT NULL;
        COMMENT ON COLUMN pointers.enrichment_status IS 'pgqueue-enricher: pending | processing | complete | failed';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = 'pointers'::regclass AND attname = 'cross_references' AND NOT attisdropped
    ) THEN
        ALTER TABLE pointers ADD COLUMN cross_references jsonb;
        COMMENT ON COLUMN pointers.cross_references IS 'pgqueue-enricher: distinct sheet, detail and spec references';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = 'pointers'::regclass AND attname = 'enrichment_metadata' AND NOT attisdropped
    ) THEN
        ALTER TABLE pointers ADD COLUMN enrichment_metadata jsonb;
        COMMENT ON COLUMN pointers.enrichment_metadata IS 'pgqueue-enricher: model, usage, latency, stage';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'pointers'::regclass AND conname = 'pointers_enrichment_status_check'
    ) THEN
        ALTER TABLE pointers ADD CONSTRAINT pointers_enrichment_status_check
            CHECK (enrichment_status IN ('pending', 'processing', 'complete', 'failed'));
        COMMENT ON CONSTRAINT pointers_enrichment_status_check ON pointers IS 'pgqueue-enricher';
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS idx_pointers_enrichment_status ON pointers (enrichment_status);

DO $$
BEGIN
    IF to_regclass('experience_files') IS NULL THEN
        CREATE TABLE experience_files (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            path text NOT NULL,
            content text NOT NULL DEFAULT '',
            updated_by_session uuid,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT experience_files_project_id_path_key UNIQUE (project_id, path)
        );
        COMMENT ON TABLE experience_files IS 'pgqueue-enricher: per-project Experience files';
    END IF;
    IF to_regclass('sessions') IS NULL THEN
        CREATE TABLE sessions (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            user_id text NOT NULL,
            session_type text NOT NULL CHECK (session_type IN ('workspace', 'telegram')),
            workspace_id uuid,
            workspace_name text,
            maestro_messages jsonb NOT NULL DEFAULT '[]'::jsonb,
            learning_messages jsonb NOT NULL DEFAULT '[]'::jsonb,
            workspace_state jsonb
                DEFAULT '{"displayed_pages": [], "highlighted_pointers": [], "pinned_pages": []}'::jsonb,
            status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'idle', 'closed')),
            last_active_at timestamptz NOT NULL DEFAULT now(),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        COMMENT ON TABLE sessions IS 'pgqueue-enricher: Maestro V3 sessions';
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS idx_experience_files_project_id ON experience_files (project_id);
CREATE INDEX IF NOT EXISTS idx_sessions_project_id ON sessions (project_id);
CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions (user_id);
CREATE INDEX IF NOT EXISTS idx_sessions_active ON sessions (status) WHERE status = 'active';

-- name: downgrade
DO $$
DECLARE
    col record;
BEGIN
    IF obj_description(to_regclass('sessions'), 'pg_class') LIKE 'pgqueue-enricher%' THEN
        DROP TABLE sessions;
    END IF;
    IF obj_description(to_regclass('experience_files'), 'pg_class') LIKE 'pgqueue-enricher%' THEN
        DROP TABLE experience_files;
    END IF;
    IF EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'pointers'::regclass AND conname = 'pointers_enrichment_status_check'
          AND obj_description(oid, 'pg_constraint') LIKE 'pgqueue-enricher%'
    ) THEN
        ALTER TABLE pointers DROP CONSTRAINT pointers_enrichment_status_check;
    END IF;
    FOR col IN
        SELECT attname FROM pg_attribute
        WHERE attrelid = 'pointers'::regclass AND attnum > 0 AND NOT attisdropped
          AND attname IN ('enrichment_status', 'cross_references', 'enrichment_metadata')
          AND col_description(attrelid, attnum) LIKE 'pgqueue-enricher%'
    LOOP
        -- Dropping the column drops idx_pointers_enrichment_status with it.
        EXECUTE format('ALTER TABLE pointers DROP COLUMN %I', col.attname);
    END LOOP;
END
$$;
