-- V3 schema foundation: enrichment columns on pointers, experience_files and sessions.
-- Everything this revision adds is tagged with a comment starting 'pgqueue-enricher', so
-- that downgrade removes exactly what this project added and nothing the host app made.
-- On a database where the host app already shipped its own V3 (revision v3_schema_001), its
-- tables, unique key and indexes are adopted: an index is only created when no index with
-- the same table, key columns and predicate exists, whatever its name.

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
        -- The host's own rule: an empty description is not a description.
        UPDATE pointers SET enrichment_status = 'complete'
        WHERE description IS NOT NULL AND description <> '' AND embedding IS NOT NULL;
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

DO $$
BEGIN
    IF pg_temp.pgqe_equivalent_index('pointers', ARRAY['enrichment_status'], NULL, false) IS NULL THEN
        CREATE INDEX idx_pointers_enrichment_status ON pointers (enrichment_status);
        COMMENT ON INDEX idx_pointers_enrichment_status IS 'pgqueue-enricher';
    END IF;
END
$$;

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
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        COMMENT ON TABLE experience_files IS 'pgqueue-enricher: per-project Experience files';
    END IF;
    -- Seeding relies on a unique key on (project_id, path): the host's is adopted whatever
    -- its name (uq_experience_files_project_path); one is made only where none exists.
    IF pg_temp.pgqe_equivalent_index('experience_files', ARRAY['project_id', 'path'], NULL, true) IS NULL THEN
        ALTER TABLE experience_files
            ADD CONSTRAINT experience_files_project_id_path_key UNIQUE (project_id, path);
        COMMENT ON CONSTRAINT experience_files_project_id_path_key ON experience_files IS 'pgqueue-enricher';
    END IF;
    IF to_regclass('sessions') IS NULL THEN
        -- Constraint names are explicit: the host's old sessions table, renamed
        -- conversations, still owns sessions_pkey and sessions_project_id_fkey.
        CREATE TABLE sessions (
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            project_id uuid NOT NULL,
            user_id text NOT NULL,
            session_type text NOT NULL,
            workspace_id uuid,
            workspace_name text,
            maestro_messages jsonb NOT NULL DEFAULT '[]'::jsonb,
            learning_messages jsonb NOT NULL DEFAULT '[]'::jsonb,
            workspace_state jsonb
                DEFAULT '{"displayed_pages": [], "highlighted_pointers": [], "pinned_pages": []}'::jsonb,
            status text NOT NULL DEFAULT 'active',
            last_active_at timestamptz NOT NULL DEFAULT now(),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_sessions PRIMARY KEY (id),
            CONSTRAINT fk_sessions_project_id FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE,
            CONSTRAINT ck_sessions_session_type CHECK (session_type IN ('workspace', 'telegram')),
            CONSTRAINT ck_sessions_status CHECK (status IN ('active', 'idle', 'closed'))
        );
        COMMENT ON TABLE sessions IS 'pgqueue-enricher: Maestro V3 sessions';
    END IF;
END
$$;

DO $$
BEGIN
    IF pg_temp.pgqe_equivalent_index('experience_files', ARRAY['project_id'], NULL, false) IS NULL THEN
        CREATE INDEX idx_experience_files_project_id ON experience_files (project_id);
        COMMENT ON INDEX idx_experience_files_project_id IS 'pgqueue-enricher';
    END IF;
    IF pg_temp.pgqe_equivalent_index('sessions', ARRAY['project_id'], NULL, false) IS NULL THEN
        CREATE INDEX idx_sessions_project_id ON sessions (project_id);
        COMMENT ON INDEX idx_sessions_project_id IS 'pgqueue-enricher';
    END IF;
    IF pg_temp.pgqe_equivalent_index('sessions', ARRAY['user_id'], NULL, false) IS NULL THEN
        CREATE INDEX idx_sessions_user_id ON sessions (user_id);
        COMMENT ON INDEX idx_sessions_user_id IS 'pgqueue-enricher';
    END IF;
    IF pg_temp.pgqe_equivalent_index('sessions', ARRAY['status'], 'status = ''active''', false) IS NULL THEN
        CREATE INDEX idx_sessions_active ON sessions (status) WHERE status = 'active';
        COMMENT ON INDEX idx_sessions_active IS 'pgqueue-enricher';
    END IF;
END
$$;

-- name: downgrade
DO $$
DECLARE
    col record;
    own record;
BEGIN
    -- Indexes this project made on tables it does not own (the host's V3 tables).
    FOR own IN
        SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE c.relkind = 'i' AND n.nspname = current_schema()
          AND c.relname IN ('idx_pointers_enrichment_status', 'idx_experience_files_project_id',
                            'idx_sessions_project_id', 'idx_sessions_user_id', 'idx_sessions_active')
          AND obj_description(c.oid, 'pg_class') LIKE 'pgqueue-enricher%'
    LOOP
        EXECUTE format('DROP INDEX %I', own.relname);
    END LOOP;
    IF EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = to_regclass('experience_files') AND conname = 'experience_files_project_id_path_key'
          AND obj_description(oid, 'pg_constraint') LIKE 'pgqueue-enricher%'
    ) THEN
        ALTER TABLE experience_files DROP CONSTRAINT experience_files_project_id_path_key;
    END IF;
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
