-- Every statement the worker and the CLI run, by name (noun then verb). Loaded by
-- pgqueue_enricher.sqlfiles; parameters are positional ($1, $2, ...) and documented per
-- block. Nothing here is ever built by string formatting: every value is a parameter.

-- name: pointers_claim
-- Claim up to $1 pending rows for worker $2 with a lease of $3 seconds, skipping rows
-- locked by other claimers and rows waiting for a retry. Order (sql/definitions/scheduling.sql): the
-- interactive lane before the backfill lane; within a lane the lowest turns first, which
-- shares free slots round-robin between projects across the whole fleet; oldest first
-- within a turn. Both lanes are ordered scans of idx_pointers_enrichment_turn. The page
-- context is joined after the claim (LEFT JOIN) so that a pointer whose page or discipline
-- row is missing is still claimed, and then failed with a reason, instead of blocking.
-- Returns the rows with their page context, in that order.
WITH interactive AS (
    SELECT id
    FROM pointers
    WHERE enrichment_status = 'pending' AND enrichment_lane = 'interactive'
      AND (enrichment_run_after IS NULL OR enrichment_run_after <= now())
    ORDER BY enrichment_turn, created_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), backfill AS (
    SELECT id
    FROM pointers
    WHERE enrichment_status = 'pending' AND enrichment_lane = 'backfill'
      AND (enrichment_run_after IS NULL OR enrichment_run_after <= now())
    ORDER BY enrichment_turn, created_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), candidates AS (
    -- Evaluated lazily: the backfill scan runs (and locks) only for the slots left over.
    SELECT id FROM interactive
    UNION ALL
    SELECT id FROM backfill
    LIMIT $1
), claimed AS (
    UPDATE pointers AS p
    SET enrichment_status = 'processing',
        enrichment_locked_by = $2,
        enrichment_locked_until = now() + make_interval(secs => $3),
        enrichment_attempts = p.enrichment_attempts + 1
    FROM candidates
    WHERE p.id = candidates.id
    RETURNING p.id, p.page_id, p.title, p.png_path, p.enrichment_attempts, p.enrichment_lane,
              p.enrichment_turn, p.description, p.cross_references, p.enrichment_metadata,
              p.created_at
), claimed_rows AS (
    SELECT claimed.id, claimed.title, claimed.png_path, claimed.enrichment_attempts AS attempt,
           claimed.enrichment_lane AS lane,
           claimed.description, claimed.cross_references::text AS cross_references,
           claimed.enrichment_metadata::text AS metadata,
           pg.id IS NOT NULL AS page_found, pg.page_name, pg.sheet_reflection,
           d.id IS NOT NULL AS discipline_found, d.display_name AS discipline_name,
           row_number() OVER (ORDER BY claimed.enrichment_lane = 'backfill', claimed.enrichment_turn,
                                       claimed.created_at, claimed.id) AS n
    FROM claimed
    LEFT JOIN pages AS pg ON pg.id = claimed.page_id
    LEFT JOIN disciplines AS d ON d.id = pg.discipline_id
)
SELECT * FROM claimed_rows ORDER BY n;

-- name: pointers_checkpoint
-- Store the description before the embedding call ($1 id, $2 worker, $3 attempt,
-- $4 description, $5 cross_references json, $6 metadata json), so a retry after an
-- embedding failure reuses it instead of paying for the model again. Fenced. Metadata is
-- merged: keys another writer put there (the host's reground_instruction, regrounded_at)
-- stay beside ours. Returns the row's id when it was written.
WITH saved AS (
    UPDATE pointers
    SET description = $4,
        cross_references = $5::text::jsonb,
        enrichment_metadata = coalesce(enrichment_metadata, '{}'::jsonb) || $6::text::jsonb
    WHERE id = $1 AND enrichment_status = 'processing'
      AND enrichment_locked_by = $2 AND enrichment_attempts = $3
    RETURNING id
)
SELECT id FROM saved;

-- name: pointers_complete
-- The write-back ($1 id, $2 worker, $3 attempt, $4 description, $5 cross_references
-- json, $6 embedding in pgvector's binary form (connections.prepare_session), $7 metadata json,
-- $8 the embedding's model, $9 the shadow vector or NULL, $10 its model or NULL). Fenced by
-- worker and attempt: a row rescued from a stalled worker and claimed again is never written
-- twice. During an embedding switch (sql/models.sql) it is written only while $8 and $10 are
-- the models the switch state names, so pointers.embedding never takes a vector of another
-- model; `models_current` false tells the worker to read the state again and embed anew. The
-- `remake` mark of requeue --stale goes with the write.
WITH models AS (
    SELECT NOT EXISTS (
        SELECT 1 FROM pgqueue_enricher_embedding_switch
        WHERE current_model IS DISTINCT FROM $8::text OR shadow_model IS DISTINCT FROM $10::text
    ) AS current
), done AS (
    UPDATE pointers
    SET enrichment_status = 'complete',
        description = $4,
        cross_references = $5::text::jsonb,
        embedding = $6::vector,
        enrichment_metadata = (coalesce(enrichment_metadata, '{}'::jsonb) - 'remake') || $7::text::jsonb,
        enrichment_error = NULL,
        enrichment_locked_by = NULL,
        enrichment_locked_until = NULL,
        enrichment_run_after = NULL,
        updated_at = now()
    WHERE id = $1 AND enrichment_status = 'processing'
      AND enrichment_locked_by = $2 AND enrichment_attempts = $3
      AND (SELECT current FROM models)
    RETURNING id
), shadow AS (
    INSERT INTO pgqueue_enricher_embedding_shadow (pointer_id, model, dimensions, embedding)
    SELECT done.id, $10::text, vector_dims($9::vector), $9::vector FROM done WHERE $10::text IS NOT NULL
    ON CONFLICT (pointer_id) DO UPDATE
    SET model = excluded.model, dimensions = excluded.dimensions, embedding = excluded.embedding,
        created_at = now()
)
SELECT (SELECT id FROM done) AS id, (SELECT current FROM models) AS models_current;

-- name: pointers_retry_later
-- A transient failure ($1 id, $2 worker, $3 attempt, $4 max attempts, $5 error,
-- $6 delay seconds, $7 metadata patch json): back to pending after the delay, or failed
-- once the attempts are spent. Fenced. Returns the new status.
UPDATE pointers
SET enrichment_status = CASE WHEN enrichment_attempts >= $4 THEN 'failed' ELSE 'pending' END,
    enrichment_error = CASE WHEN enrichment_attempts >= $4
        THEN $5 || ' (gave up after ' || enrichment_attempts || ' attempts)'
        ELSE $5 END,
    enrichment_run_after = CASE WHEN enrichment_attempts >= $4 THEN NULL
        ELSE now() + make_interval(secs => $6) END,
    enrichment_metadata = coalesce(enrichment_metadata, '{}'::jsonb) || $7::text::jsonb,
    enrichment_locked_by = NULL,
    enrichment_locked_until = NULL
WHERE id = $1 AND enrichment_status = 'processing'
  AND enrichment_locked_by = $2 AND enrichment_attempts = $3
RETURNING enrichment_status;

-- name: pointers_fail
-- A permanent failure ($1 id, $2 worker, $3 attempt, $4 error, $5 metadata patch json).
UPDATE pointers
SET enrichment_status = 'failed',
    enrichment_error = $4,
    enrichment_run_after = NULL,
    enrichment_metadata = coalesce(enrichment_metadata, '{}'::jsonb) || $5::text::jsonb,
    enrichment_locked_by = NULL,
    enrichment_locked_until = NULL
WHERE id = $1 AND enrichment_status = 'processing'
  AND enrichment_locked_by = $2 AND enrichment_attempts = $3
RETURNING enrichment_status;

-- name: pointers_release
-- Graceful shutdown ($1 ids, $2 worker): unfinished rows go back to pending with the
-- attempt they were claimed with given back, as if never claimed.
UPDATE pointers
SET enrichment_status = 'pending',
    enrichment_attempts = greatest(enrichment_attempts - 1, 0),
    enrichment_locked_by = NULL,
    enrichment_locked_until = NULL
WHERE id = ANY ($1::uuid[]) AND enrichment_status = 'processing' AND enrichment_locked_by = $2
RETURNING id;

-- name: pointers_extend_leases
-- Heartbeat ($1 ids, $2 worker, $3 lease seconds). Returns the ids still held, so the
-- worker learns which rows it lost (rescued by another worker after a stall).
UPDATE pointers
SET enrichment_locked_until = now() + make_interval(secs => $3)
WHERE id = ANY ($1::uuid[]) AND enrichment_status = 'processing' AND enrichment_locked_by = $2
RETURNING id;

-- name: pointers_rescue_expired
-- Any worker returns rows whose lease ran out ($1 max attempts, $2 batch size) to pending,
-- or to failed when their attempts are spent. Rows of live workers have fresh leases and
-- are never touched. A row another tool left `processing` with no lease at all (the host
-- app's own Pass 2 worker sets none) is first given one of $3 seconds from the moment it is
-- seen: if that tool finishes the row in time nothing else happens, and if it does not, the
-- row is rescued like any expired one. Both sets are disjoint (NULL is never < now()), and
-- the adopting CTE runs whether or not the main statement reads it.
WITH adopted AS (
    UPDATE pointers
    SET enrichment_locked_until = now() + make_interval(secs => $3::float8)
    WHERE id IN (
        SELECT id FROM pointers
        WHERE enrichment_status = 'processing' AND enrichment_locked_until IS NULL
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id
), expired AS (
    SELECT id
    FROM pointers
    WHERE enrichment_status = 'processing' AND enrichment_locked_until < now()
    ORDER BY enrichment_locked_until
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE pointers AS p
SET enrichment_status = CASE WHEN p.enrichment_attempts >= $1 THEN 'failed' ELSE 'pending' END,
    enrichment_error = CASE WHEN p.enrichment_locked_by IS NULL
            THEN 'another tool (such as the host app''s own Pass 2 worker) left the pointer processing '
                 || 'without a lease and did not finish it within ' || round($3::float8)::integer || ' s'
            ELSE 'worker ' || p.enrichment_locked_by
                 || ' stopped renewing its lease (it crashed, was killed or lost its database connection)'
        END
        || CASE WHEN p.enrichment_attempts >= $1
               THEN '; gave up after ' || p.enrichment_attempts || ' attempts'
               ELSE '; the pointer was put back in the queue' END,
    enrichment_locked_by = NULL,
    enrichment_locked_until = NULL
FROM expired
WHERE p.id = expired.id
RETURNING p.id, p.enrichment_status;

-- name: pointers_count_unfinished
-- What `run --drain` waits for: rows pending (including those waiting for a retry) or
-- processing.
SELECT count(*) FILTER (WHERE enrichment_status = 'pending') AS pending,
       count(*) FILTER (WHERE enrichment_status = 'processing') AS processing
FROM pointers
WHERE enrichment_status IN ('pending', 'processing');

-- name: pointers_status_counts
SELECT enrichment_status AS status, count(*) AS n
FROM pointers
GROUP BY enrichment_status;

-- name: pointers_status_queue
SELECT extract(epoch FROM now() - min(created_at)) AS oldest_pending_age_s,
       count(*) FILTER (WHERE enrichment_run_after > now()) AS retrying
FROM pointers
WHERE enrichment_status = 'pending';

-- name: pointers_status_failure_reasons
-- Top failure reasons ($1 how many).
SELECT coalesce(enrichment_error, '(no reason recorded)') AS reason, count(*) AS n
FROM pointers
WHERE enrichment_status = 'failed'
GROUP BY 1
ORDER BY n DESC, reason
LIMIT $1;

-- name: pointers_status_without_lease
-- Rows `processing` that no worker of this project holds: left by another tool (the host
-- app's own worker sets no lease). The rescue adopts them and frees them after a lease.
SELECT count(*) AS n
FROM pointers
WHERE enrichment_status = 'processing' AND enrichment_locked_by IS NULL;

-- name: pointers_status_completed_last_hour
SELECT count(*) AS n
FROM pointers
WHERE enrichment_status = 'complete' AND updated_at > now() - interval '1 hour'
  AND enrichment_metadata ? 'enriched_at';

-- name: pointers_requeue_failed
-- The CLI's requeue: the SQL API function, with every filter as a parameter.
SELECT requeue_failed_pointers(project_id => $1::uuid, pointer_ids => $2::uuid[], error_like => $3::text) AS n;

-- name: experience_seed
SELECT seed_default_experience($1::uuid) AS n;

-- name: experience_seed_sqlalchemy
-- The same call in SQLAlchemy's named-parameter style, for host code with a Session.
SELECT seed_default_experience(CAST(:project_id AS uuid)) AS n;

-- name: session_backend_pid
-- The backend's own process id: a pooler reports another one at startup
-- (pgqueue_enricher.connections), which is how the worker knows to prepare nothing.
SELECT pg_backend_pid();

-- name: vector_type_schema
-- Where the pgvector extension put its `vector` type (public, or Supabase's extensions), for
-- the pool's binary codec (pgqueue_enricher.connections.prepare_session); NULL without it.
SELECT n.nspname
FROM pg_type AS t
JOIN pg_namespace AS n ON n.oid = t.typnamespace
JOIN pg_depend AS d ON d.objid = t.oid AND d.deptype = 'e'
JOIN pg_extension AS e ON e.oid = d.refobjid AND e.extname = 'vector'
WHERE t.typname = 'vector';

-- name: listener_ping
-- The listener's health round trip ($1 its private channel), sent from a pool connection:
-- it must reach the listening session, which a transaction pooler would not let it do.
SELECT pg_notify($1, '');

-- Worker registry (table pgqueue_enricher_workers, revision 0009), used by pgqueue_enricher.registry.

-- name: workers_beat
-- Register or refresh worker $1 ($2 host, $3 pid, $4 version, $5 in flight, $6 listener
-- state, $7 provider pause or NULL, $8 seconds until it counts as gone). An upsert, so a
-- worker whose row expired during an outage comes back with its first heartbeat. Rows of
-- workers that stopped beating are deleted on the way.
WITH expired AS (
    DELETE FROM pgqueue_enricher_workers
    WHERE expires_at < now() AND worker_id <> $1
)
INSERT INTO pgqueue_enricher_workers AS w
    (worker_id, host, pid, version, started_at, heartbeat_at, expires_at, in_flight,
     listener_state, provider_pause)
VALUES ($1, $2, $3, $4, now(), now(), now() + make_interval(secs => $8), $5, $6, $7)
ON CONFLICT (worker_id) DO UPDATE
SET host = excluded.host,
    pid = excluded.pid,
    version = excluded.version,
    heartbeat_at = excluded.heartbeat_at,
    expires_at = excluded.expires_at,
    in_flight = excluded.in_flight,
    listener_state = excluded.listener_state,
    provider_pause = excluded.provider_pause;

-- name: workers_remove
-- A clean stop ($1 worker id).
DELETE FROM pgqueue_enricher_workers WHERE worker_id = $1;

-- name: workers_live
-- Live workers, with the rows each holds under an unexpired lease (the database's own count,
-- fresher than the worker's last report).
SELECT w.worker_id, w.host, w.pid, w.version, w.started_at, w.heartbeat_at, w.listener_state,
       w.provider_pause, w.in_flight AS reported_in_flight, coalesce(held.n, 0) AS in_flight
FROM pgqueue_enricher_workers AS w
LEFT JOIN (
    SELECT enrichment_locked_by AS worker_id, count(*) AS n
    FROM pointers
    WHERE enrichment_status = 'processing' AND enrichment_locked_until > now()
    GROUP BY enrichment_locked_by
) AS held ON held.worker_id = w.worker_id
WHERE w.expires_at > now()
ORDER BY w.worker_id;

-- Scheduling and cost (lanes, tiers, the cost ledger; sql/definitions/scheduling.sql) --------

-- name: pointers_wait
-- A wait, not a failure ($1 id, $2 worker, $3 attempt, $4 delay seconds or NULL for due at
-- once, $5 metadata patch json): the provider shed the call (a Flex shed), refused it for
-- quota, or is paused for the whole fleet (provider admission), so the row goes back to
-- pending after the delay with the attempt given back, no error recorded and its turn kept.
-- Fenced. Returns the status.
UPDATE pointers
SET enrichment_status = 'pending',
    enrichment_attempts = greatest(enrichment_attempts - 1, 0),
    enrichment_run_after = CASE WHEN $4::float8 IS NULL THEN NULL
        ELSE now() + make_interval(secs => $4::float8) END,
    enrichment_metadata = coalesce(enrichment_metadata, '{}'::jsonb) || $5::text::jsonb,
    enrichment_locked_by = NULL,
    enrichment_locked_until = NULL
WHERE id = $1 AND enrichment_status = 'processing'
  AND enrichment_locked_by = $2 AND enrichment_attempts = $3
RETURNING enrichment_status;

-- name: pointers_requeue_to_lane
-- The CLI's `requeue --lane`: the SQL API function, with every filter as a parameter.
SELECT requeue_pointers_to_lane(lane => $1::text, project_id => $2::uuid, pointer_ids => $3::uuid[],
                                include_complete => $4::boolean) AS n;

-- name: pointers_status_lanes
-- Rows per lane and status (only the queue's statuses: complete rows have no lane to wait in).
SELECT enrichment_lane AS lane, enrichment_status AS status, count(*) AS n
FROM pointers
WHERE enrichment_status IN ('pending', 'processing')
GROUP BY 1, 2;

-- name: lane_tiers_status
-- Lanes whose configured service tier the API refused (see lane_tiers_fall_back).
SELECT lane, configured_tier, effective_tier, reason, worker_id,
       extract(epoch FROM changed_at) AS changed_at
FROM pgqueue_enricher_lane_tiers
ORDER BY lane;

-- name: lane_tiers_fall_back
-- A worker found the API refusing lane $1's tier $2; it now uses $3 ($4 reason, $5 worker).
INSERT INTO pgqueue_enricher_lane_tiers (lane, configured_tier, effective_tier, reason, worker_id, changed_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (lane) DO UPDATE
SET configured_tier = excluded.configured_tier,
    effective_tier = excluded.effective_tier,
    reason = excluded.reason,
    worker_id = excluded.worker_id,
    changed_at = excluded.changed_at;

-- name: pointers_costs
-- The cost ledger: tokens and estimated dollars of rows completed since $1 seconds ago
-- (NULL: ever), for project $2 (NULL: every project), per project, lane and service tier.
-- The project comes through the page, so rows completed before the project was
-- denormalised onto the row are counted too.
SELECT coalesce(d.project_id, p.enrichment_project_id) AS project_id,
       p.enrichment_lane AS lane,
       coalesce(p.enrichment_metadata->>'service_tier', 'unknown') AS tier,
       count(*) AS pointers,
       sum(coalesce((p.enrichment_metadata->'usage'->>'prompt_tokens')::bigint, 0)) AS prompt_tokens,
       sum(coalesce((p.enrichment_metadata->'usage'->>'cached_tokens')::bigint, 0)) AS cached_tokens,
       sum(coalesce((p.enrichment_metadata->'usage'->>'output_tokens')::bigint, 0)) AS output_tokens,
       sum(coalesce((p.enrichment_metadata->'usage'->>'thoughts_tokens')::bigint, 0)) AS thoughts_tokens,
       sum(coalesce((p.enrichment_metadata->'usage'->>'tool_use_prompt_tokens')::bigint, 0)) AS tool_use_prompt_tokens,
       sum(coalesce((p.enrichment_metadata->>'estimated_cost_usd')::numeric, 0)) AS estimated_cost_usd
FROM pointers AS p
LEFT JOIN pages AS pg ON pg.id = p.page_id
LEFT JOIN disciplines AS d ON d.id = pg.discipline_id
WHERE p.enrichment_status = 'complete'
  AND p.enrichment_metadata ? 'enriched_at'
  AND ($1::float8 IS NULL OR p.updated_at > now() - make_interval(secs => $1::float8))
  AND ($2::uuid IS NULL OR coalesce(d.project_id, p.enrichment_project_id) = $2::uuid)
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- name: cross_references_unresolved
-- Sheets that references of complete pointers name and that no page of their project has,
-- for project $1 (NULL: every project): the most referenced first, at most $2. Two
-- spellings of one sheet (A-501, A501) are one row, shown in the spelling used most; `n`
-- counts references (a pointer naming the sheet twice counts once: its list is distinct).
-- The same rule as pointer_cross_reference_links (sql/cross_references.sql), written so
-- that each distinct string of a project is parsed once: `status` reads every project.
WITH refs AS (
    SELECT d.project_id, r.reference, count(*) AS n
    FROM pointers AS p
    JOIN pages AS pg ON pg.id = p.page_id
    JOIN disciplines AS d ON d.id = pg.discipline_id
    CROSS JOIN LATERAL jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(p.cross_references) = 'array' THEN p.cross_references ELSE '[]'::jsonb END
    ) AS r(reference)
    WHERE p.enrichment_status = 'complete'
      AND ($1::uuid IS NULL OR d.project_id = $1::uuid)
    GROUP BY d.project_id, r.reference
), sheets AS (
    SELECT refs.project_id, x.sheet, refs.n
    FROM refs
    CROSS JOIN LATERAL parse_cross_reference(refs.reference) AS x
    WHERE x.sheet IS NOT NULL
)
SELECT s.project_id,
       mode() WITHIN GROUP (ORDER BY s.sheet) AS sheet,
       sum(s.n) AS n
FROM sheets AS s
-- LIMIT keeps this a probe of idx_pages_discipline_sheet per distinct sheet rather than a
-- hash of every page of every project.
LEFT JOIN LATERAL (
    SELECT 1 AS found
    FROM disciplines AS td
    JOIN pages AS tpg ON tpg.discipline_id = td.id
    WHERE td.project_id = s.project_id
      AND regexp_replace(regexp_replace(upper(tpg.page_name), '[[:space:]_-]+', '', 'g'),
                         '(?<![0-9])\.|\.(?![0-9])', '', 'g')
          = normalise_sheet_id(s.sheet)
    LIMIT 1
) AS page ON true
WHERE page.found IS NULL
GROUP BY s.project_id, normalise_sheet_id(s.sheet)
ORDER BY n DESC, s.project_id, sheet
LIMIT $2;

-- name: cross_references_links
-- Each reference of the complete pointers of project $1 (NULL: every project) with what it
-- resolves to, at most $2 rows, with the names a reader needs beside the ids.
SELECT l.pointer_id, l.project_id, p.title, pg.page_name, l.reference, l.kind, l.detail, l.sheet,
       l.target_page_id, tpg.page_name AS target_page_name,
       l.target_pointer_id, tp.title AS target_pointer_title
FROM pointer_cross_reference_links AS l
JOIN pointers AS p ON p.id = l.pointer_id
JOIN pages AS pg ON pg.id = p.page_id
LEFT JOIN pages AS tpg ON tpg.id = l.target_page_id
LEFT JOIN pointers AS tp ON tp.id = l.target_pointer_id
WHERE ($1::uuid IS NULL OR l.project_id = $1::uuid)
ORDER BY l.project_id, pg.page_name, p.title, l.pointer_id
LIMIT $2;

-- name: schema_revision
-- The revision the database was migrated to (the worker checks it once at start-up).
SELECT version_num FROM pgqueue_enricher_alembic_version;
