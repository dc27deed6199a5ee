-- Lanes, fair share and the cost ledger's tier state (issue 13). Frozen copy: the
-- functions and triggers below also live in sql/scheduling.sql, which a later revision
-- changes instead of this file.
--
-- Adds to pointers: enrichment_project_id (the project, denormalised for the claim),
-- enrichment_lane ('interactive' default, or 'backfill') and enrichment_turn (the row's
-- place in its lane's fair rotation), two partial indexes over pending rows, and the
-- table pgqueue_enricher_lane_tiers (a lane whose service tier the API refused).
-- The backfill touches only rows that are not complete: complete rows keep updated_at.

-- name: upgrade
ALTER TABLE pointers ADD COLUMN IF NOT EXISTS enrichment_project_id uuid;
ALTER TABLE pointers ADD COLUMN IF NOT EXISTS enrichment_lane varchar(20) NOT NULL DEFAULT 'interactive';
ALTER TABLE pointers ADD COLUMN IF NOT EXISTS enrichment_turn bigint;
COMMENT ON COLUMN pointers.enrichment_project_id IS 'pgqueue-enricher: project of the page, kept by trigger';
COMMENT ON COLUMN pointers.enrichment_lane IS 'pgqueue-enricher: interactive | backfill';
COMMENT ON COLUMN pointers.enrichment_turn IS 'pgqueue-enricher: place in the lane''s fair rotation';

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'pointers'::regclass AND conname = 'pointers_enrichment_lane_check'
    ) THEN
        ALTER TABLE pointers ADD CONSTRAINT pointers_enrichment_lane_check
            CHECK (enrichment_lane IN ('interactive', 'backfill'));
    END IF;
END
$$;

-- The doorbell's update trigger joins its transition tables, which is quadratic when no
-- row moves to pending (as here): it is switched off for this one statement, which moves
-- nothing to pending, and back on below (all inside this revision's transaction).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'pointers'::regclass
               AND tgname = 'pointers_doorbell_update' AND tgenabled = 'O') THEN
        ALTER TABLE pointers DISABLE TRIGGER pointers_doorbell_update;
    END IF;
END
$$;

-- Unfinished rows get their project; pending legacy rows (never attempted, no metadata,
-- older than an hour: what migration 0002 marked pending on deploy day) go to the backfill
-- lane; every pending row gets its turn, numbered per project and lane by age.
WITH unfinished AS (
    SELECT p.id,
           d.project_id,
           CASE WHEN p.enrichment_status = 'pending' AND p.enrichment_attempts = 0
                     AND p.enrichment_metadata IS NULL AND p.created_at < now() - interval '1 hour'
                THEN 'backfill' ELSE p.enrichment_lane END AS lane,
           p.enrichment_status = 'pending' AS pending,
           p.created_at
    FROM pointers AS p
    LEFT JOIN pages AS pg ON pg.id = p.page_id
    LEFT JOIN disciplines AS d ON d.id = pg.discipline_id
    WHERE p.enrichment_status <> 'complete'
), numbered AS (
    SELECT id, project_id, lane,
           CASE WHEN pending THEN row_number() OVER (
               PARTITION BY pending, lane, project_id ORDER BY created_at, id) END AS turn
    FROM unfinished
)
UPDATE pointers AS p
SET enrichment_project_id = numbered.project_id,
    enrichment_lane = numbered.lane,
    enrichment_turn = numbered.turn
FROM numbered
WHERE p.id = numbered.id;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'pointers'::regclass
               AND tgname = 'pointers_doorbell_update' AND tgenabled = 'D') THEN
        ALTER TABLE pointers ENABLE TRIGGER pointers_doorbell_update;
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS idx_pointers_enrichment_turn
    ON pointers (enrichment_lane, enrichment_turn, created_at, id) WHERE enrichment_status = 'pending';
CREATE INDEX IF NOT EXISTS idx_pointers_enrichment_project_turn
    ON pointers (enrichment_project_id, enrichment_lane, enrichment_turn) WHERE enrichment_status = 'pending';

CREATE TABLE IF NOT EXISTS pgqueue_enricher_lane_tiers (
    lane varchar(20) PRIMARY KEY CHECK (lane IN ('interactive', 'backfill')),
    configured_tier text NOT NULL,
    effective_tier text NOT NULL,
    reason text,
    worker_id text,
    changed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgqueue_enricher_lane_tiers IS 'pgqueue-enricher: lanes whose service tier the API refused';
ALTER TABLE pgqueue_enricher_lane_tiers ENABLE ROW LEVEL SECURITY;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON pgqueue_enricher_lane_tiers FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON pgqueue_enricher_lane_tiers FROM authenticated;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION public.pointers_schedule() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.page_id IS DISTINCT FROM OLD.page_id THEN
        -- ids are uuid: migrate refuses other id types before changing anything (0005).
        SELECT d.project_id INTO NEW.enrichment_project_id
        FROM public.pages AS pg
        JOIN public.disciplines AS d ON d.id = pg.discipline_id
        WHERE pg.id = NEW.page_id;
    END IF;
    IF NEW.enrichment_status = 'pending'
       AND (TG_OP = 'INSERT'
            OR NEW.enrichment_turn IS NULL
            OR OLD.enrichment_status IN ('complete', 'failed')
            OR NEW.enrichment_lane IS DISTINCT FROM OLD.enrichment_lane) THEN
        NEW.enrichment_turn := greatest(
            (SELECT max(p.enrichment_turn)
             FROM public.pointers AS p
             WHERE p.enrichment_status = 'pending'
               AND p.enrichment_project_id = NEW.enrichment_project_id
               AND p.enrichment_lane = NEW.enrichment_lane) + 1,
            (SELECT p.enrichment_turn
             FROM public.pointers AS p
             WHERE p.enrichment_status = 'pending' AND p.enrichment_lane = NEW.enrichment_lane
             ORDER BY p.enrichment_turn
             LIMIT 1),
            1);
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS pointers_schedule_insert ON public.pointers;
CREATE TRIGGER pointers_schedule_insert
    BEFORE INSERT ON public.pointers
    FOR EACH ROW EXECUTE FUNCTION public.pointers_schedule();

-- The WHEN clause is evaluated without calling the function: the claim, the heartbeat and
-- the write-backs (which set enrichment_status) pay nothing for it.
DROP TRIGGER IF EXISTS pointers_schedule_update ON public.pointers;
CREATE TRIGGER pointers_schedule_update
    BEFORE UPDATE OF page_id, enrichment_status, enrichment_lane, enrichment_turn ON public.pointers
    FOR EACH ROW
    WHEN (NEW.page_id IS DISTINCT FROM OLD.page_id
          OR (NEW.enrichment_status = 'pending'
              AND (NEW.enrichment_turn IS NULL
                   OR OLD.enrichment_status IN ('complete', 'failed')
                   OR NEW.enrichment_lane IS DISTINCT FROM OLD.enrichment_lane)))
    EXECUTE FUNCTION public.pointers_schedule();

-- requeue_pointers_to_lane: move pointers into a lane, from plain psql:
--   SELECT requeue_pointers_to_lane('backfill', project_id => '…');   -- demote a big upload
--   SELECT requeue_pointers_to_lane('backfill', include_complete => true);  -- re-enrich all
-- Pending and failed rows move (failed ones start again with 0 attempts); complete rows
-- only with include_complete (a re-enrichment after a prompt change). Rows in flight are
-- left alone. Filters combine with AND; all NULL means every such row. Returns the count.
CREATE OR REPLACE FUNCTION public.requeue_pointers_to_lane(
    lane text,
    project_id uuid DEFAULT NULL,
    pointer_ids uuid[] DEFAULT NULL,
    include_complete boolean DEFAULT false
) RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    moved integer;
BEGIN
    IF lane IS NULL OR lane NOT IN ('interactive', 'backfill') THEN
        RAISE EXCEPTION 'unknown lane %: use interactive or backfill', quote_nullable(lane)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH moved_rows AS (
        UPDATE public.pointers AS p
        SET enrichment_lane = requeue_pointers_to_lane.lane,
            enrichment_status = 'pending',
            enrichment_turn = NULL,
            enrichment_attempts = CASE WHEN p.enrichment_status = 'pending' THEN p.enrichment_attempts ELSE 0 END,
            enrichment_run_after = CASE WHEN p.enrichment_status = 'pending' THEN p.enrichment_run_after END,
            enrichment_error = CASE WHEN p.enrichment_status = 'pending' THEN p.enrichment_error END,
            enrichment_locked_by = NULL,
            enrichment_locked_until = NULL
        WHERE (p.enrichment_status IN ('pending', 'failed')
               OR (p.enrichment_status = 'complete' AND requeue_pointers_to_lane.include_complete))
          AND (requeue_pointers_to_lane.pointer_ids IS NULL
               OR p.id = ANY (requeue_pointers_to_lane.pointer_ids))
          AND (requeue_pointers_to_lane.project_id IS NULL
               OR p.page_id IN (
                   SELECT pg.id FROM public.pages AS pg
                   JOIN public.disciplines AS d ON d.id = pg.discipline_id
                   WHERE d.project_id = requeue_pointers_to_lane.project_id))
        RETURNING 1
    )
    SELECT count(*)::integer INTO moved FROM moved_rows;
    RETURN moved;
END
$$;

-- Where Supabase's Data API roles exist, only the owner (and service_role, for the SQL API)
-- may call them (ALL on a function is EXECUTE; PUBLIC includes anon). Plain Postgres keeps
-- PUBLIC's default, as for the other functions (revision 0006).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated')) THEN
        REVOKE ALL ON FUNCTION public.pointers_schedule(), public.requeue_pointers_to_lane(text, uuid, uuid[], boolean)
            FROM PUBLIC;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON FUNCTION public.pointers_schedule(), public.requeue_pointers_to_lane(text, uuid, uuid[], boolean)
            FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON FUNCTION public.pointers_schedule(), public.requeue_pointers_to_lane(text, uuid, uuid[], boolean)
            FROM authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT ALL ON FUNCTION public.requeue_pointers_to_lane(text, uuid, uuid[], boolean) TO service_role;
    END IF;
END
$$;

-- name: downgrade
DROP FUNCTION IF EXISTS public.requeue_pointers_to_lane(text, uuid, uuid[], boolean);
DROP TRIGGER IF EXISTS pointers_schedule_update ON public.pointers;
DROP TRIGGER IF EXISTS pointers_schedule_insert ON public.pointers;
DROP FUNCTION IF EXISTS public.pointers_schedule();
DROP TABLE IF EXISTS pgqueue_enricher_lane_tiers;
DROP INDEX IF EXISTS idx_pointers_enrichment_project_turn;
DROP INDEX IF EXISTS idx_pointers_enrichment_turn;
ALTER TABLE pointers DROP CONSTRAINT IF EXISTS pointers_enrichment_lane_check;
ALTER TABLE pointers DROP COLUMN IF EXISTS enrichment_turn;
ALTER TABLE pointers DROP COLUMN IF EXISTS enrichment_lane;
ALTER TABLE pointers DROP COLUMN IF EXISTS enrichment_project_id;
