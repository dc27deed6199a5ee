-- Supabase-native security (revision 0006). Supabase exposes schema public through its
-- Data API to anyone holding the public anon key (role anon) and to signed-in users (role
-- authenticated), and projects created before 2026-05-30 grant both roles everything on
-- new tables and functions by default. This revision makes nothing of this project
-- readable, writable or callable that way, and fixes a database migrated before it:
-- - experience_files and sessions get row level security; anon and authenticated lose
--   every privilege on them and on the version table (role statements are skipped where
--   the roles do not exist, as on plain Postgres);
-- - every function is recreated with `SET search_path = ''` and qualified names (the living
--   files sql/doorbell.sql, sql/experience.sql, sql/requeue.sql, copied here verbatim); the
--   seeding trigger function runs as its owner; where the Data API roles exist, nobody but
--   the owner (and service_role for seed_default_experience and requeue_failed_pointers) may
--   EXECUTE them, PUBLIC included (plain Postgres keeps PUBLIC's default);
-- - the foreign keys of the baseline tables get an index where none leads with their column.
--
-- Downgrade restores the previous state and no more: before changing anything, the upgrade
-- writes each privilege it takes away, each grant it adds and each table it turns row level
-- security on for into pgqueue_enricher_security_undo; the downgrade replays that table
-- backwards (skipping roles that are gone) and then drops it. Grant options are not
-- recorded: Supabase gives anon and authenticated none. The indexes carry a comment starting
-- 'pgqueue-enricher', so the downgrade drops only the ones it created.

-- name: upgrade
CREATE TABLE public.pgqueue_enricher_security_undo (
    object_type text NOT NULL CHECK (object_type IN ('TABLE', 'FUNCTION')),
    object_schema name NOT NULL,
    -- a table's name, or a function's name alone (the project's function names are unique)
    object_name name NOT NULL,
    -- what the downgrade does: grant back a revoked privilege, revoke an added grant, or
    -- turn row level security off again
    undo text NOT NULL CHECK (undo IN ('grant', 'revoke', 'disable_rls')),
    -- a role name; NULL for PUBLIC (and for disable_rls)
    grantee name,
    privilege text CHECK (
        privilege IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER', 'MAINTAIN', 'EXECUTE')
    )
);
COMMENT ON TABLE public.pgqueue_enricher_security_undo IS
    'pgqueue-enricher: what revision 0006 changed in privileges and row level security, for its downgrade';
ALTER TABLE public.pgqueue_enricher_security_undo ENABLE ROW LEVEL SECURITY;

-- Table privileges of anon and authenticated (the version table is found the way Alembic
-- created it, through the migration's search_path).
INSERT INTO public.pgqueue_enricher_security_undo (object_type, object_schema, object_name, undo, grantee, privilege)
SELECT 'TABLE', n.nspname, c.relname, 'grant', r.rolname, acl.privilege_type
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
CROSS JOIN LATERAL pg_catalog.aclexplode(COALESCE(c.relacl, pg_catalog.acldefault('r', c.relowner))) AS acl
JOIN pg_catalog.pg_roles AS r ON r.oid = acl.grantee
WHERE c.oid IN (
        'public.experience_files'::regclass,
        'public.sessions'::regclass,
        pg_catalog.to_regclass('pgqueue_enricher_alembic_version')
    )
  AND r.rolname IN ('anon', 'authenticated');

-- The five functions' EXECUTE held by anon, authenticated and, where either exists, PUBLIC.
INSERT INTO public.pgqueue_enricher_security_undo (object_type, object_schema, object_name, undo, grantee, privilege)
SELECT 'FUNCTION', n.nspname, p.proname, 'grant', r.rolname, acl.privilege_type
FROM pg_catalog.pg_proc AS p
JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
CROSS JOIN LATERAL pg_catalog.aclexplode(COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) AS acl
LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = acl.grantee
WHERE p.oid IN (
        'public.pointers_ring_doorbell_on_insert()'::regprocedure,
        'public.pointers_ring_doorbell_on_update()'::regprocedure,
        'public.seed_default_experience(uuid)'::regprocedure,
        'public.projects_seed_experience()'::regprocedure,
        'public.requeue_failed_pointers(uuid, uuid[], text)'::regprocedure
    )
  AND (
        r.rolname IN ('anon', 'authenticated')
        OR (acl.grantee = 0
            AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated')))
    );

-- The EXECUTE that service_role is about to get and did not hold in its own name.
INSERT INTO public.pgqueue_enricher_security_undo (object_type, object_schema, object_name, undo, grantee, privilege)
SELECT 'FUNCTION', n.nspname, p.proname, 'revoke', r.rolname, 'EXECUTE'
FROM pg_catalog.pg_proc AS p
JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
CROSS JOIN pg_catalog.pg_roles AS r
WHERE p.oid IN (
        'public.seed_default_experience(uuid)'::regprocedure,
        'public.requeue_failed_pointers(uuid, uuid[], text)'::regprocedure
    )
  AND r.rolname = 'service_role'
  AND NOT EXISTS (
        SELECT 1
        FROM pg_catalog.aclexplode(COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) AS acl
        WHERE acl.grantee = r.oid
    );

-- Row level security this revision turns on.
INSERT INTO public.pgqueue_enricher_security_undo (object_type, object_schema, object_name, undo)
SELECT 'TABLE', n.nspname, c.relname, 'disable_rls'
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.oid IN ('public.experience_files'::regclass, 'public.sessions'::regclass)
  AND NOT c.relrowsecurity;

-- Current function definitions: the upgrade blocks of sql/doorbell.sql, sql/experience.sql and
-- sql/requeue.sql at this revision.
CREATE OR REPLACE FUNCTION public.pointers_ring_doorbell_on_insert() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted_rows WHERE enrichment_status = 'pending') THEN
        PERFORM pg_catalog.pg_notify('pointer_enrichment', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION public.pointers_ring_doorbell_on_update() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.enrichment_status = 'pending' AND o.enrichment_status IS DISTINCT FROM 'pending'
    ) THEN
        PERFORM pg_catalog.pg_notify('pointer_enrichment', '');
    END IF;
    RETURN NULL;
END
$$;

-- Where Supabase's Data API roles exist, nobody but the owner may call them (ALL on a
-- function is EXECUTE; PUBLIC includes anon). Plain Postgres keeps PUBLIC's default.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated')) THEN
        REVOKE ALL ON FUNCTION public.pointers_ring_doorbell_on_insert(), public.pointers_ring_doorbell_on_update()
            FROM PUBLIC;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON FUNCTION public.pointers_ring_doorbell_on_insert(), public.pointers_ring_doorbell_on_update()
            FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON FUNCTION public.pointers_ring_doorbell_on_insert(), public.pointers_ring_doorbell_on_update()
            FROM authenticated;
    END IF;
END
$$;

DROP TRIGGER IF EXISTS pointers_doorbell_insert ON public.pointers;
CREATE TRIGGER pointers_doorbell_insert
    AFTER INSERT ON public.pointers
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.pointers_ring_doorbell_on_insert();

DROP TRIGGER IF EXISTS pointers_doorbell_update ON public.pointers;
CREATE TRIGGER pointers_doorbell_update
    AFTER UPDATE ON public.pointers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.pointers_ring_doorbell_on_update();

CREATE OR REPLACE FUNCTION public.seed_default_experience(project_id uuid) RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
-- In ON CONFLICT (project_id, path), project_id is the column, not the parameter.
#variable_conflict use_column
DECLARE
    inserted integer;
BEGIN
    INSERT INTO public.experience_files (project_id, path, content)
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

CREATE OR REPLACE FUNCTION public.projects_seed_experience() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    PERFORM public.seed_default_experience(NEW.id);
    RETURN NULL;
END
$$;

-- Where Supabase's Data API roles exist, only the owner and service_role may call them (ALL
-- on a function is EXECUTE; PUBLIC includes anon). Plain Postgres keeps PUBLIC's default.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated')) THEN
        REVOKE ALL ON FUNCTION public.seed_default_experience(uuid), public.projects_seed_experience() FROM PUBLIC;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON FUNCTION public.seed_default_experience(uuid), public.projects_seed_experience() FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON FUNCTION public.seed_default_experience(uuid), public.projects_seed_experience()
            FROM authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT ALL ON FUNCTION public.seed_default_experience(uuid) TO service_role;
    END IF;
END
$$;

DROP TRIGGER IF EXISTS projects_seed_experience ON public.projects;
CREATE TRIGGER projects_seed_experience
    AFTER INSERT ON public.projects
    FOR EACH ROW EXECUTE FUNCTION public.projects_seed_experience();

CREATE OR REPLACE FUNCTION public.requeue_failed_pointers(
    project_id uuid DEFAULT NULL,
    pointer_ids uuid[] DEFAULT NULL,
    error_like text DEFAULT NULL
) RETURNS integer
LANGUAGE sql
SET search_path = ''
AS $$
    WITH requeued AS (
        UPDATE public.pointers AS p
        SET enrichment_status = 'pending',
            enrichment_attempts = 0,
            enrichment_run_after = NULL,
            enrichment_error = NULL,
            enrichment_locked_by = NULL,
            enrichment_locked_until = NULL
        WHERE p.enrichment_status = 'failed'
          AND (requeue_failed_pointers.pointer_ids IS NULL
               OR p.id = ANY (requeue_failed_pointers.pointer_ids))
          AND (requeue_failed_pointers.error_like IS NULL
               OR p.enrichment_error ILIKE requeue_failed_pointers.error_like)
          AND (requeue_failed_pointers.project_id IS NULL
               OR p.page_id IN (
                   SELECT pg.id FROM public.pages AS pg
                   JOIN public.disciplines AS d ON d.id = pg.discipline_id
                   WHERE d.project_id = requeue_failed_pointers.project_id))
        RETURNING 1
    )
    SELECT pg_catalog.count(*)::integer FROM requeued;
$$;

-- Where Supabase's Data API roles exist, only the owner and service_role may call it (ALL on
-- a function is EXECUTE; PUBLIC includes anon). Plain Postgres keeps PUBLIC's default.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated')) THEN
        REVOKE ALL ON FUNCTION public.requeue_failed_pointers(uuid, uuid[], text) FROM PUBLIC;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON FUNCTION public.requeue_failed_pointers(uuid, uuid[], text) FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON FUNCTION public.requeue_failed_pointers(uuid, uuid[], text) FROM authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT ALL ON FUNCTION public.requeue_failed_pointers(uuid, uuid[], text) TO service_role;
    END IF;
END
$$;

-- The project's tables. Row level security with no policy: the owner (the daemon and host
-- code connect as the owner, postgres on Supabase) and roles with BYPASSRLS (service_role)
-- see everything, any other role nothing, whatever it was granted.
ALTER TABLE public.experience_files ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.sessions ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON TABLE public.experience_files, public.sessions, public.pgqueue_enricher_security_undo FROM anon;
        IF pg_catalog.to_regclass('pgqueue_enricher_alembic_version') IS NOT NULL THEN
            REVOKE ALL ON TABLE pgqueue_enricher_alembic_version FROM anon;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON TABLE public.experience_files, public.sessions, public.pgqueue_enricher_security_undo
            FROM authenticated;
        IF pg_catalog.to_regclass('pgqueue_enricher_alembic_version') IS NOT NULL THEN
            REVOKE ALL ON TABLE pgqueue_enricher_alembic_version FROM authenticated;
        END IF;
    END IF;
END
$$;

-- Indexes for the foreign keys of the baseline tables (0001), so that deleting a project
-- or a page does not scan the child table. Created only where no index leads with the
-- column (the host may have its own) and the name is free; tagged for the downgrade. On a
-- large pointers table the build holds off writes to pointers while it runs.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_index AS i
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = 'public.disciplines'::regclass AND a.attname = 'project_id'
    ) AND pg_catalog.to_regclass('public.idx_disciplines_project_id') IS NULL THEN
        CREATE INDEX idx_disciplines_project_id ON public.disciplines (project_id);
        COMMENT ON INDEX public.idx_disciplines_project_id IS 'pgqueue-enricher: index of foreign key disciplines.project_id';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_index AS i
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = 'public.pages'::regclass AND a.attname = 'discipline_id'
    ) AND pg_catalog.to_regclass('public.idx_pages_discipline_id') IS NULL THEN
        CREATE INDEX idx_pages_discipline_id ON public.pages (discipline_id);
        COMMENT ON INDEX public.idx_pages_discipline_id IS 'pgqueue-enricher: index of foreign key pages.discipline_id';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_index AS i
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = 'public.pointers'::regclass AND a.attname = 'page_id'
    ) AND pg_catalog.to_regclass('public.idx_pointers_page_id') IS NULL THEN
        CREATE INDEX idx_pointers_page_id ON public.pointers (page_id);
        COMMENT ON INDEX public.idx_pointers_page_id IS 'pgqueue-enricher: index of foreign key pointers.page_id';
    END IF;
END
$$;

-- name: downgrade
-- The functions as revisions 0004 and 0005 left them (sql/migrations/0004_sql_api.sql, and
-- seed_default_experience from 0005_host_adoption.sql). CREATE OR REPLACE keeps a function's
-- privileges and resets everything else it does not name, so this also drops SECURITY
-- DEFINER and the pinned search_path; the triggers keep pointing at the same functions.
CREATE OR REPLACE FUNCTION pointers_ring_doorbell_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted_rows WHERE enrichment_status = 'pending') THEN
        PERFORM pg_notify('pointer_enrichment', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION pointers_ring_doorbell_on_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.enrichment_status = 'pending' AND o.enrichment_status IS DISTINCT FROM 'pending'
    ) THEN
        PERFORM pg_notify('pointer_enrichment', '');
    END IF;
    RETURN NULL;
END
$$;

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

CREATE OR REPLACE FUNCTION projects_seed_experience() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM seed_default_experience(NEW.id);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION requeue_failed_pointers(
    project_id uuid DEFAULT NULL,
    pointer_ids uuid[] DEFAULT NULL,
    error_like text DEFAULT NULL
) RETURNS integer
LANGUAGE sql AS $$
    WITH requeued AS (
        UPDATE pointers AS p
        SET enrichment_status = 'pending',
            enrichment_attempts = 0,
            enrichment_run_after = NULL,
            enrichment_error = NULL,
            enrichment_locked_by = NULL,
            enrichment_locked_until = NULL
        WHERE p.enrichment_status = 'failed'
          AND (requeue_failed_pointers.pointer_ids IS NULL
               OR p.id = ANY (requeue_failed_pointers.pointer_ids))
          AND (requeue_failed_pointers.error_like IS NULL
               OR p.enrichment_error ILIKE requeue_failed_pointers.error_like)
          AND (requeue_failed_pointers.project_id IS NULL
               OR p.page_id IN (
                   SELECT pg.id FROM pages AS pg
                   JOIN disciplines AS d ON d.id = pg.discipline_id
                   WHERE d.project_id = requeue_failed_pointers.project_id))
        RETURNING 1
    )
    SELECT count(*)::integer FROM requeued;
$$;

DO $$
DECLARE
    change record;
    s name;
    t name;
    g name;
BEGIN
    FOR change IN SELECT * FROM public.pgqueue_enricher_security_undo LOOP
        CONTINUE WHEN change.grantee IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = change.grantee);
        s := change.object_schema;
        t := change.object_name;
        g := change.grantee;
        IF change.undo = 'disable_rls' THEN
            EXECUTE format('ALTER TABLE %I.%I DISABLE ROW LEVEL SECURITY', s, t);
        ELSIF change.object_type = 'TABLE' THEN
            -- A privilege is a keyword, not an identifier: one statement for each.
            CASE change.privilege
                WHEN 'SELECT' THEN EXECUTE format('GRANT SELECT ON TABLE %I.%I TO %I', s, t, g);
                WHEN 'INSERT' THEN EXECUTE format('GRANT INSERT ON TABLE %I.%I TO %I', s, t, g);
                WHEN 'UPDATE' THEN EXECUTE format('GRANT UPDATE ON TABLE %I.%I TO %I', s, t, g);
                WHEN 'DELETE' THEN EXECUTE format('GRANT DELETE ON TABLE %I.%I TO %I', s, t, g);
                WHEN 'TRUNCATE' THEN EXECUTE format('GRANT TRUNCATE ON TABLE %I.%I TO %I', s, t, g);
                WHEN 'REFERENCES' THEN EXECUTE format('GRANT REFERENCES ON TABLE %I.%I TO %I', s, t, g);
                WHEN 'TRIGGER' THEN EXECUTE format('GRANT TRIGGER ON TABLE %I.%I TO %I', s, t, g);
                WHEN 'MAINTAIN' THEN EXECUTE format('GRANT MAINTAIN ON TABLE %I.%I TO %I', s, t, g);
            END CASE;
        -- Functions: ALL on a function is EXECUTE.
        ELSIF change.undo = 'grant' AND g IS NULL THEN
            EXECUTE format('GRANT ALL ON FUNCTION %I.%I TO PUBLIC', s, t);
        ELSIF change.undo = 'grant' THEN
            EXECUTE format('GRANT ALL ON FUNCTION %I.%I TO %I', s, t, g);
        ELSE
            EXECUTE format('REVOKE ALL ON FUNCTION %I.%I FROM %I', s, t, g);
        END IF;
    END LOOP;
END
$$;
DROP TABLE public.pgqueue_enricher_security_undo;

DO $$
BEGIN
    IF obj_description(pg_catalog.to_regclass('public.idx_pointers_page_id'), 'pg_class') LIKE 'pgqueue-enricher%' THEN
        DROP INDEX public.idx_pointers_page_id;
    END IF;
    IF obj_description(pg_catalog.to_regclass('public.idx_pages_discipline_id'), 'pg_class') LIKE 'pgqueue-enricher%' THEN
        DROP INDEX public.idx_pages_discipline_id;
    END IF;
    IF obj_description(pg_catalog.to_regclass('public.idx_disciplines_project_id'), 'pg_class') LIKE 'pgqueue-enricher%' THEN
        DROP INDEX public.idx_disciplines_project_id;
    END IF;
END
$$;
