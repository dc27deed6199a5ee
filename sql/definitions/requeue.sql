-- requeue_failed_pointers: the operator's way back from `failed`, usable from plain psql:
--   SELECT requeue_failed_pointers(project_id => '…');
--   SELECT requeue_failed_pointers(error_like => '%429%');
-- Filters combine with AND; all NULL means every failed row. Attempts restart at 0. The
-- update moves rows to pending, so the doorbell trigger wakes the workers.
--
-- Current definition (revision 0006 installs it; sql/migrations/0004_sql_api.sql has the
-- first one): search_path pinned empty, names qualified. Requeueing starts paid model
-- calls, so on Supabase only the owner and service_role may call it; an operator role there
-- needs `GRANT EXECUTE ON FUNCTION public.requeue_failed_pointers(uuid, uuid[], text) TO <role>`.

-- name: upgrade
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

-- name: downgrade
DROP FUNCTION IF EXISTS public.requeue_failed_pointers(uuid, uuid[], text);
