-- requeue_failed_pointers: the operator's way back from `failed`, usable from plain psql:
--   SELECT requeue_failed_pointers(project_id => '…');
--   SELECT requeue_failed_pointers(error_like => '%429%');
-- Filters combine with AND; all NULL means every failed row. Attempts restart at 0. The
-- update moves rows to pending, so the doorbell trigger wakes the workers.

-- name: upgrade
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
