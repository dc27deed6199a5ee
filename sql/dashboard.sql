-- What the operators' dashboard (pgqueue_enricher.dashboard) reads, and the pause it lifts.
-- Status counts and requeues are the queue's own statements (sql/queries.sql).
--
-- Every overview statement is served by an index (tests/dashboard/test_dashboard_plans.py runs
-- EXPLAIN on them over 100,000 pointers): the status index, the claim and lease indexes, the
-- lanes' turn index and idx_pointers_enrichment_completed (revision 0016).

-- name: overview_lane_counts
-- Pending rows per lane (an index-only scan of the turn index, pending rows only) and
-- processing rows per lane (few: the status index): the two statuses that wait in a lane.
SELECT enrichment_lane AS lane, 'pending' AS status, count(*) AS n
FROM pointers
WHERE enrichment_status = 'pending'
GROUP BY enrichment_lane
UNION ALL
SELECT enrichment_lane, 'processing', count(*)
FROM pointers
WHERE enrichment_status = 'processing'
GROUP BY enrichment_lane;

-- name: overview_oldest_pending
-- Age of the oldest pending row: the first entry of the claim index.
SELECT extract(epoch FROM now() - created_at)::float8 AS age_s
FROM pointers
WHERE enrichment_status = 'pending'
ORDER BY created_at
LIMIT 1;

-- name: overview_completions_per_hour
-- Completions of the last 24 hours by hour ($1 hours back), oldest first.
SELECT extract(epoch FROM date_trunc('hour', updated_at))::bigint AS hour_epoch, count(*) AS n
FROM pointers
WHERE enrichment_status = 'complete' AND updated_at > now() - make_interval(hours => $1::int)
GROUP BY 1
ORDER BY 1;

-- name: overview_completed_last_hour
-- Completions in the last 60 minutes: the pace the backlog ETA falls back on.
SELECT count(*) AS n
FROM pointers
WHERE enrichment_status = 'complete' AND updated_at > now() - interval '1 hour';

-- name: overview_workers
-- Live workers with the rows each holds under an unexpired lease (the lease index).
SELECT w.worker_id, w.host, w.pid, w.version, w.started_at, w.heartbeat_at, w.listener_state,
       w.provider_pause, w.in_flight AS reported_in_flight, coalesce(held.n, 0) AS leases_held
FROM pgqueue_enricher_workers AS w
LEFT JOIN (
    SELECT enrichment_locked_by AS worker_id, count(*) AS n
    FROM pointers
    WHERE enrichment_status = 'processing' AND enrichment_locked_until > now()
    GROUP BY enrichment_locked_by
) AS held ON held.worker_id = w.worker_id
WHERE w.expires_at > now()
ORDER BY w.worker_id;

-- name: projects_progress
-- Per project: all rows, and those pending, processing and failed (complete is the rest).
-- Each count is read from an index, not from the table: all rows per page from the page
-- index (index-only), pending rows from the lanes' per-project index (index-only), and the
-- few processing and failed rows through the status index.
WITH per_page AS (
    SELECT page_id, count(*) AS n
    FROM pointers
    GROUP BY page_id
), totals AS (
    SELECT d.project_id, sum(pp.n)::bigint AS total
    FROM per_page AS pp
    JOIN pages AS pg ON pg.id = pp.page_id
    JOIN disciplines AS d ON d.id = pg.discipline_id
    GROUP BY d.project_id
), pending AS (
    SELECT enrichment_project_id AS project_id, count(*) AS n
    FROM pointers
    WHERE enrichment_status = 'pending'
    GROUP BY enrichment_project_id
), unsettled AS (
    SELECT d.project_id,
           count(*) FILTER (WHERE p.enrichment_status = 'processing') AS processing,
           count(*) FILTER (WHERE p.enrichment_status = 'failed') AS failed
    FROM pointers AS p
    JOIN pages AS pg ON pg.id = p.page_id
    JOIN disciplines AS d ON d.id = pg.discipline_id
    WHERE p.enrichment_status IN ('processing', 'failed')
    GROUP BY d.project_id
)
SELECT t.project_id, pr.name, t.total,
       coalesce(pe.n, 0) AS pending, coalesce(u.processing, 0) AS processing, coalesce(u.failed, 0) AS failed
FROM totals AS t
LEFT JOIN projects AS pr ON pr.id = t.project_id
LEFT JOIN pending AS pe ON pe.project_id = t.project_id
LEFT JOIN unsettled AS u ON u.project_id = t.project_id;

-- name: projects_recent_cost
-- Estimated Gemini cost per project of rows completed in the last 7 days, and of those in
-- the last 24 hours (idx_pointers_enrichment_completed).
SELECT d.project_id,
       sum(coalesce((p.enrichment_metadata->>'estimated_cost_usd')::numeric, 0))::float8 AS cost_7d,
       sum(coalesce((p.enrichment_metadata->>'estimated_cost_usd')::numeric, 0))
           FILTER (WHERE p.updated_at > now() - interval '24 hours')::float8 AS cost_24h
FROM pointers AS p
JOIN pages AS pg ON pg.id = p.page_id
JOIN disciplines AS d ON d.id = pg.discipline_id
WHERE p.enrichment_status = 'complete' AND p.updated_at > now() - interval '7 days'
GROUP BY 1;

-- name: failures_groups
-- Failed rows grouped by reason, largest first ($1 how many groups). `reason_key` names a
-- group in URLs and forms without carrying its text.
SELECT md5(coalesce(enrichment_error, '')) AS reason_key,
       coalesce(enrichment_error, '(no reason recorded)') AS reason, count(*) AS n
FROM pointers
WHERE enrichment_status = 'failed'
GROUP BY enrichment_error
ORDER BY n DESC, reason
LIMIT $1;

-- name: failures_rows
-- The failed rows of the groups $1 (reason keys), at most $2 per group, newest first.
SELECT reason_key, id, title, page_name, attempts, updated_at
FROM (
    SELECT md5(coalesce(p.enrichment_error, '')) AS reason_key, p.id, p.title, pg.page_name,
           p.enrichment_attempts AS attempts, p.updated_at,
           row_number() OVER (PARTITION BY p.enrichment_error ORDER BY p.updated_at DESC, p.id) AS nth
    FROM pointers AS p
    LEFT JOIN pages AS pg ON pg.id = p.page_id
    WHERE p.enrichment_status = 'failed' AND md5(coalesce(p.enrichment_error, '')) = ANY ($1::text[])
) AS ranked
WHERE nth <= $2
ORDER BY reason_key, updated_at DESC, id;

-- name: failures_group_ids
-- Every failed row of one group ($1 reason key): what "requeue this group" requeues.
SELECT array_agg(id) AS ids
FROM pointers
WHERE enrichment_status = 'failed' AND md5(coalesce(enrichment_error, '')) = $1;

-- name: pointer_read
-- One pointer with its page, discipline and project ($1 id).
SELECT p.id, p.title, p.description, p.enrichment_status AS status, p.enrichment_lane AS lane,
       p.enrichment_attempts AS attempts, p.enrichment_error AS error,
       p.enrichment_locked_by AS locked_by, p.enrichment_locked_until AS locked_until,
       p.enrichment_run_after AS run_after, p.cross_references::text AS cross_references,
       p.enrichment_metadata::text AS metadata, p.png_path, p.created_at, p.updated_at,
       pg.id AS page_id, pg.page_name, dsc.display_name AS discipline,
       dsc.project_id, pr.name AS project_name
FROM pointers AS p
LEFT JOIN pages AS pg ON pg.id = p.page_id
LEFT JOIN disciplines AS dsc ON dsc.id = pg.discipline_id
LEFT JOIN projects AS pr ON pr.id = dsc.project_id
WHERE p.id = $1;

-- name: project_exists
SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1) AS found;

-- Actions (admin only). -------------------------------------------------------------------

-- name: action_resume_provider
-- Lift a provider's pause ($1 provider) with the SQL API's own function; true when a pause
-- was lifted.
SELECT pgqueue_enricher_resume_provider($1::text) AS resumed;
