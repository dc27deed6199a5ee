-- Default Experience files for every project: what Maestro's learning loop starts from.
-- seed_default_experience is idempotent (ON CONFLICT DO NOTHING) so it can be re-run on
-- old projects, and it never overwrites a file a user or session has edited.
--
-- Current definitions (revision 0006 installs them; sql/migrations/0004_sql_api.sql and
-- 0005_host_adoption.sql have the earlier ones). search_path is pinned empty and every name
-- qualified, so `INSERT INTO public.projects` seeds from any session, whatever its
-- search_path. The trigger function runs as its owner (SECURITY
-- DEFINER): whoever may insert a project gets its files even where row level security on
-- experience_files hides the table from them; a trigger function cannot be called directly,
-- so this lends the owner's rights to nothing else. seed_default_experience itself runs as
-- its caller; on Supabase only service_role and the owner may call it.

-- name: upgrade
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

-- name: downgrade
DROP TRIGGER IF EXISTS projects_seed_experience ON public.projects;
DROP FUNCTION IF EXISTS public.projects_seed_experience();
DROP FUNCTION IF EXISTS public.seed_default_experience(uuid);
