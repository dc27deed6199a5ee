-- Revision 0004, frozen as released: the doorbell trigger, experience seeding and the
-- requeue function as they were first shipped. Never edit this file: a changed function or
-- trigger is applied by a new revision (the living definitions are sql/doorbell.sql,
-- sql/experience.sql and sql/requeue.sql).

-- name: upgrade
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

DROP TRIGGER IF EXISTS pointers_doorbell_insert ON pointers;
CREATE TRIGGER pointers_doorbell_insert
    AFTER INSERT ON pointers
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pointers_ring_doorbell_on_insert();

DROP TRIGGER IF EXISTS pointers_doorbell_update ON pointers;
CREATE TRIGGER pointers_doorbell_update
    AFTER UPDATE ON pointers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pointers_ring_doorbell_on_update();

CREATE OR REPLACE FUNCTION seed_default_experience(project_id uuid) RETURNS integer
LANGUAGE plpgsql AS $$
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
    ON CONFLICT ON CONSTRAINT experience_files_project_id_path_key DO NOTHING;
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

-- name: downgrade
DROP FUNCTION IF EXISTS requeue_failed_pointers(uuid, uuid[], text);

DROP TRIGGER IF EXISTS projects_seed_experience ON projects;
DROP FUNCTION IF EXISTS projects_seed_experience();
DROP FUNCTION IF EXISTS seed_default_experience(uuid);

DROP TRIGGER IF EXISTS pointers_doorbell_update ON pointers;
DROP TRIGGER IF EXISTS pointers_doorbell_insert ON pointers;
DROP FUNCTION IF EXISTS pointers_ring_doorbell_on_update();
DROP FUNCTION IF EXISTS pointers_ring_doorbell_on_insert();
