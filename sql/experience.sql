-- Default Experience files for every project: what Maestro's learning loop starts from.
-- seed_default_experience is idempotent (ON CONFLICT DO NOTHING) so it can be re-run on
-- old projects, and it never overwrites a file a user or session has edited.

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

CREATE OR REPLACE FUNCTION projects_seed_experience() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM seed_default_experience(NEW.id);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS projects_seed_experience ON projects;
CREATE TRIGGER projects_seed_experience
    AFTER INSERT ON projects
    FOR EACH ROW EXECUTE FUNCTION projects_seed_experience();

-- name: downgrade
DROP TRIGGER IF EXISTS projects_seed_experience ON projects;
DROP FUNCTION IF EXISTS projects_seed_experience();
DROP FUNCTION IF EXISTS seed_default_experience(uuid);
