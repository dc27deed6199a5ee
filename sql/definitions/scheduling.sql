-- Fair, prioritised scheduling: what the claim needs, kept on the pointer row itself.
--
-- Every pending pointer carries its project (enrichment_project_id, denormalised from
-- pages -> disciplines), its lane (interactive before backfill) and its turn
-- (enrichment_turn). The claim takes the lowest turns of a lane, oldest first within a
-- turn, through one partial index: an ordered index scan like the FIFO claim it replaces.
--
-- The turn is start-time fair queueing: a new pending row of project P in lane L gets
--     greatest(1 + last turn of P's pending rows in L, lowest pending turn in L, 1)
-- so each project's rows are numbered 1, 2, 3, ... from "now" (the lane's lowest pending
-- turn) and a project that arrives behind another's backlog interleaves with it row for
-- row instead of waiting for all of it. It is fleet-wide (the turns are in the table every
-- worker claims from), work-conserving (the claim takes whatever turns exist) and costs
-- two index probes per inserted row. Rows coming back from `processing` (retry, release,
-- rescue) keep their turn; rows coming back from `complete` or `failed`, or moved to
-- another lane, get a new one.

-- name: upgrade
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
