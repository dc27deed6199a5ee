-- Revision 0005, adoption of a host database that already has its own V3 (frozen as
-- released; the living definition of the seeding function is sql/experience.sql).
-- - Seeding conflicts on the columns (project_id, path), whatever the unique key is named:
--   after the host's v3_schema_001 every INSERT INTO projects failed with the old function.
-- - A database migrated by an earlier 0002 may hold this project's indexes beside the host's
--   equivalent ones: ours are dropped where an equivalent exists, and the rest are tagged so
--   that downgrade drops them and never the host's.
-- - The unique key on experience_files (project_id, path) is verified, made only if absent.
-- - Rows an earlier 0002 marked complete with an empty description are pending again (only
--   where that revision added enrichment_status, and never a row this project enriched).

-- name: upgrade
CREATE OR REPLACE FUNCTION seed_default_experience(project_id uuid) RETURNS integer
LANGUAGE plpgsql AS $$
-- In ON CONFLICT (project_id, path), project_id is the column, not the parameter.
#variable_conflict use_column
DECLARE
    inserted integer;
BEGIN
    INSERT INTO experience_files (project_id, path, content)
    VALUES
        (seed_default_experience.project_id, 'routing_rules.md',
         E'# Routing Rules\n\n## Default Routes\n\n'
         || E'- Dimensions, wall types and assemblies: architectural sections and details (A-3xx, A-5xx).\n'
         || E'- Structure, rebar and connections: structural sheets (S-xxx).\n'
         || E'- Panels, circuits and fixtures: electrical schedules and plans (E-xxx).\n'
         || E'- Materials and installation requirements: the specification section named in the callout.\n\n'
         || E'## Extended Knowledge\n\n_Nothing yet: routes learned for this project are added here._\n\n'
         || E'## Learned Patterns\n\n_Nothing yet: patterns confirmed by the superintendent are added here._\n'),
        (seed_default_experience.project_id, 'corrections.md',
         E'# Corrections\n\nAnswers the superintendent corrected, with the right answer and its source.\n'),
        (seed_default_experience.project_id, 'preferences.md',
         E'# Preferences\n\nHow this team wants answers: units, level of detail, sheets to check first.\n'),
        (seed_default_experience.project_id, 'schedule.md',
         E'# Schedule\n\nMilestones, phases and inspections that shape which drawings matter now.\n'),
        (seed_default_experience.project_id, 'gaps.md',
         E'# Gaps\n\nQuestions the plan set could not answer, to raise as RFIs.\n')
    -- By columns, not by constraint name: the host's own V3 names its key
    -- uq_experience_files_project_path, this project's 0002 experience_files_project_id_path_key.
    ON CONFLICT (project_id, path) DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END
$$;

DO $$
DECLARE
    own record;
BEGIN
    -- (index, table, columns, predicate, whether ours by name alone)
    FOR own IN
        SELECT * FROM (VALUES
            ('idx_experience_files_project_id', 'experience_files', ARRAY['project_id'], NULL, true),
            ('idx_sessions_project_id', 'sessions', ARRAY['project_id'], NULL, true),
            ('idx_sessions_user_id', 'sessions', ARRAY['user_id'], NULL, true),
            ('idx_sessions_active', 'sessions', ARRAY['status'], 'status = ''active''', false),
            ('idx_pointers_enrichment_status', 'pointers', ARRAY['enrichment_status'], NULL, false)
        ) AS o (index_name, table_name, columns, predicate, ours_by_name)
    LOOP
        CONTINUE WHEN to_regclass(own.index_name) IS NULL;
        -- A shared name is ours only where this project made what it sits on.
        CONTINUE WHEN NOT own.ours_by_name AND NOT coalesce(
            obj_description(to_regclass(own.table_name), 'pg_class') LIKE 'pgqueue-enricher%'
            OR (own.table_name = 'pointers' AND EXISTS (
                SELECT 1 FROM pg_attribute
                WHERE attrelid = 'pointers'::regclass AND attname = 'enrichment_status'
                  AND col_description(attrelid, attnum) LIKE 'pgqueue-enricher%')),
            false);
        IF pg_temp.pgqe_equivalent_index(
            own.table_name::regclass, own.columns, own.predicate, false, own.index_name
        ) IS NOT NULL THEN
            EXECUTE format('DROP INDEX %I', own.index_name);
        ELSIF obj_description(to_regclass(own.index_name), 'pg_class') IS NULL THEN
            EXECUTE format('COMMENT ON INDEX %I IS %L', own.index_name, 'pgqueue-enricher');
        END IF;
    END LOOP;
    IF pg_temp.pgqe_equivalent_index('experience_files', ARRAY['project_id', 'path'], NULL, true) IS NULL THEN
        ALTER TABLE experience_files
            ADD CONSTRAINT experience_files_project_id_path_key UNIQUE (project_id, path);
        COMMENT ON CONSTRAINT experience_files_project_id_path_key ON experience_files IS 'pgqueue-enricher';
    END IF;
    IF EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = 'pointers'::regclass AND attname = 'enrichment_status'
          AND col_description(attrelid, attnum) LIKE 'pgqueue-enricher%'
    ) THEN
        UPDATE pointers SET enrichment_status = 'pending'
        WHERE enrichment_status = 'complete' AND description = '' AND enrichment_metadata IS NULL;
    END IF;
END
$$;

-- name: downgrade
-- Nothing to undo: the seeding function of 0005 works at 0004 too (it no longer depends on
-- a constraint name), dropped indexes were duplicates, and tags only make downgrades safer.
SELECT 1;
