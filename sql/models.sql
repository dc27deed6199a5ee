-- Statements of model changes (pgqueue_enricher.model_switch, the CLI's requeue --stale,
-- embeddings and compare), by name. Loaded by pgqueue_enricher.schema.sqlfiles
-- `models_query(name)`; every value is a parameter except the dimensions of a column type,
-- which DDL cannot take as one (model_switch.py formats a checked integer).

-- name: embedding_switch_get
-- The one state row (none: no switch ever started; VOYAGE_MODEL is what pointers hold).
SELECT phase, current_model, current_dimensions, shadow_model, shadow_dimensions,
       started_at, changed_at
FROM pgqueue_enricher_embedding_switch;

-- name: embedding_switch_lock_pointers
-- Taken first by every statement group that changes the switch state: it waits for write-backs
-- in flight, and a write-back that starts after it waits in turn and then reads the new state
-- (a statement takes its snapshot after its locks), so no vector of the wrong model lands.
-- Readers are not blocked.
LOCK TABLE pointers IN SHARE ROW EXCLUSIVE MODE;

-- name: embedding_switch_put
-- The state row ($1 phase, $2 current model, $3 current dimensions, $4 shadow model, $5 shadow
-- dimensions); `started_at` moves only when a switch starts from idle.
INSERT INTO pgqueue_enricher_embedding_switch AS s
    (id, phase, current_model, current_dimensions, shadow_model, shadow_dimensions)
VALUES (true, $1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE
SET phase = excluded.phase,
    current_model = excluded.current_model,
    current_dimensions = excluded.current_dimensions,
    shadow_model = excluded.shadow_model,
    shadow_dimensions = excluded.shadow_dimensions,
    started_at = CASE WHEN s.phase = 'idle' THEN now() ELSE s.started_at END,
    changed_at = now();

-- name: pointers_queue_shadow_fill
-- Complete rows with a vector but none of model $1 in the shadow go to the backfill lane,
-- marked `remake: shadow`: the worker embeds their stored text with $1 only (no Gemini call)
-- and puts them back to complete without touching description or embedding. Returns the count.
WITH queued AS (
    UPDATE pointers AS p
    SET enrichment_status = 'pending',
        enrichment_lane = 'backfill',
        enrichment_turn = NULL,
        enrichment_attempts = 0,
        enrichment_run_after = NULL,
        enrichment_error = NULL,
        enrichment_locked_by = NULL,
        enrichment_locked_until = NULL,
        enrichment_metadata = coalesce(p.enrichment_metadata, '{}'::jsonb) || '{"remake": "shadow"}'::jsonb
    WHERE p.enrichment_status = 'complete' AND p.embedding IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM pgqueue_enricher_embedding_shadow AS s WHERE s.pointer_id = p.id AND s.model = $1
      )
    RETURNING 1
)
SELECT count(*)::integer FROM queued;

-- name: pointers_unqueue_shadow_fill
-- An abandoned switch: rows still waiting for their shadow vector are complete again as they were.
WITH restored AS (
    UPDATE pointers AS p
    SET enrichment_status = 'complete',
        enrichment_metadata = p.enrichment_metadata - 'remake'
    WHERE p.enrichment_status = 'pending' AND p.enrichment_metadata->>'remake' = 'shadow'
    RETURNING 1
)
SELECT count(*)::integer FROM restored;

-- name: embedding_switch_progress
-- Per project: rows holding a vector, those with one of the shadow's model $1 beside it, and
-- those still missing it.
SELECT coalesce(d.project_id, p.enrichment_project_id) AS project_id,
       count(*) AS with_vector,
       count(s.pointer_id) AS shadowed,
       count(*) - count(s.pointer_id) AS missing
FROM pointers AS p
LEFT JOIN pages AS pg ON pg.id = p.page_id
LEFT JOIN disciplines AS d ON d.id = pg.discipline_id
LEFT JOIN pgqueue_enricher_embedding_shadow AS s ON s.pointer_id = p.id AND s.model = $1
WHERE p.embedding IS NOT NULL
GROUP BY 1
ORDER BY 1;

-- name: embedding_switch_missing
-- Rows whose vector has no counterpart of model $1 in the shadow, per status: the cutover
-- refuses while there is any (their pointers.embedding would stay in the old space).
SELECT p.enrichment_status AS status, count(*) AS n
FROM pointers AS p
WHERE p.embedding IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM pgqueue_enricher_embedding_shadow AS s WHERE s.pointer_id = p.id AND s.model = $1
  )
GROUP BY 1
ORDER BY 1;

-- name: embedding_swap
-- Same dimensions on both sides: every shadow vector into pointers.embedding and the vector
-- it replaces into the shadow, in one statement (both sub-statements read the table as it was
-- before it). $1 the model, $2 the dimensions pointers held until now. The stamps follow the
-- vector. Returns the rows swapped.
WITH shadow AS (
    SELECT pointer_id, model, dimensions, embedding FROM pgqueue_enricher_embedding_shadow
), to_pointers AS (
    UPDATE pointers AS p
    SET embedding = shadow.embedding,
        enrichment_metadata = coalesce(p.enrichment_metadata, '{}'::jsonb)
            || jsonb_build_object('embedding_model', shadow.model, 'embedding_dimensions', shadow.dimensions)
    FROM shadow
    WHERE p.id = shadow.pointer_id AND p.embedding IS NOT NULL
    RETURNING p.id
), to_shadow AS (
    UPDATE pgqueue_enricher_embedding_shadow AS s
    SET embedding = p.embedding, model = $1, dimensions = $2
    FROM pointers AS p
    WHERE p.id = s.pointer_id AND p.embedding IS NOT NULL
    RETURNING s.pointer_id
)
SELECT (SELECT count(*) FROM to_pointers) AS swapped, (SELECT count(*) FROM to_shadow) AS kept;

-- name: embedding_swap_save_current
-- Other dimensions (step 1 of 3, model_switch.py): the current vectors aside in a temporary
-- table dropped at commit, before the column changes type.
CREATE TEMPORARY TABLE pgqe_previous_vectors ON COMMIT DROP AS
SELECT id, embedding FROM pointers WHERE embedding IS NOT NULL;

-- name: embedding_swap_fill_pointers
-- Step 3 of 3: the column (now of the shadow's dimensions, all NULL) takes the shadow vectors,
-- the shadow the saved ones ($1 their model, $2 their dimensions).
WITH to_pointers AS (
    UPDATE pointers AS p
    SET embedding = s.embedding,
        enrichment_metadata = coalesce(p.enrichment_metadata, '{}'::jsonb)
            || jsonb_build_object('embedding_model', s.model, 'embedding_dimensions', s.dimensions)
    FROM pgqueue_enricher_embedding_shadow AS s, pgqe_previous_vectors AS v
    WHERE p.id = s.pointer_id AND v.id = p.id
    RETURNING p.id
), to_shadow AS (
    UPDATE pgqueue_enricher_embedding_shadow AS s
    SET embedding = v.embedding, model = $1, dimensions = $2
    FROM pgqe_previous_vectors AS v
    WHERE v.id = s.pointer_id
    RETURNING s.pointer_id
)
SELECT (SELECT count(*) FROM to_pointers) AS swapped, (SELECT count(*) FROM to_shadow) AS kept;

-- name: embedding_shadow_clear
DELETE FROM pgqueue_enricher_embedding_shadow;

-- name: pointers_embedding_models
-- Which embedding models pointers.embedding holds, per project, by the rows' stamps (the test
-- samples it during a switch: one model per project, always).
SELECT coalesce(d.project_id, p.enrichment_project_id) AS project_id,
       p.enrichment_metadata->>'embedding_model' AS model, count(*) AS n
FROM pointers AS p
LEFT JOIN pages AS pg ON pg.id = p.page_id
LEFT JOIN disciplines AS d ON d.id = pg.discipline_id
WHERE p.embedding IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: pointers_complete_shadow
-- A `remake: shadow` row done ($1 id, $2 worker, $3 attempt, $4 the shadow model the worker
-- embedded with, or NULL when it saw no switch, $5 its vector, $6 metadata patch json): back to
-- complete with description and embedding untouched, its shadow vector beside it. Fenced, and
-- written only while $4 is still the state's shadow model; `models_current` false tells the
-- worker to read the state again.
WITH models AS (
    SELECT (SELECT shadow_model FROM pgqueue_enricher_embedding_switch) IS NOT DISTINCT FROM $4::text AS current
), done AS (
    UPDATE pointers
    SET enrichment_status = 'complete',
        enrichment_metadata = (coalesce(enrichment_metadata, '{}'::jsonb) - 'remake') || $6::text::jsonb,
        enrichment_error = NULL,
        enrichment_locked_by = NULL,
        enrichment_locked_until = NULL,
        enrichment_run_after = NULL
    WHERE id = $1 AND enrichment_status = 'processing'
      AND enrichment_locked_by = $2 AND enrichment_attempts = $3
      AND (SELECT current FROM models)
    RETURNING id
), shadow AS (
    INSERT INTO pgqueue_enricher_embedding_shadow (pointer_id, model, dimensions, embedding)
    SELECT done.id, $4::text, vector_dims($5::vector), $5::vector FROM done WHERE $4::text IS NOT NULL
    ON CONFLICT (pointer_id) DO UPDATE
    SET model = excluded.model, dimensions = excluded.dimensions, embedding = excluded.embedding,
        created_at = now()
)
SELECT (SELECT id FROM done) AS id, (SELECT current FROM models) AS models_current;

-- Stale rows (requeue --stale) --------------------------------------------------------------

-- name: pointers_stale_head
-- Not a statement by itself: complete rows of project $5 (NULL: all) with the first of their
-- stamps that differs from the current ones ($1 model, $2 prompt version, $3 embedding model,
-- $4 embedding dimensions as text): `prompt`, then `model`, then `embedding`. A missing stamp
-- (a row completed before stamps existed) differs. Only-embedding rows need their description.
WITH stale AS (
    SELECT p.id,
           CASE
               WHEN p.enrichment_metadata->>'prompt_version' IS DISTINCT FROM $2::text THEN 'prompt'
               WHEN p.enrichment_metadata->>'model' IS DISTINCT FROM $1::text THEN 'model'
               WHEN p.enrichment_metadata->>'embedding_model' IS DISTINCT FROM $3::text
                    OR p.enrichment_metadata->>'embedding_dimensions' IS DISTINCT FROM $4::text
                   THEN CASE WHEN p.description <> '' THEN 'embedding' ELSE 'model' END
           END AS reason
    FROM pointers AS p
    WHERE p.enrichment_status = 'complete'
      AND ($5::uuid IS NULL OR p.page_id IN (
          SELECT pg.id FROM pages AS pg
          JOIN disciplines AS d ON d.id = pg.discipline_id
          WHERE d.project_id = $5::uuid))
)

-- name: pointers_stale_summary
-- requeue --stale --dry-run: per reason, the rows and the token usage they stored when they
-- were made (the estimate of what remaking them costs).
-- include: pointers_stale_head
SELECT s.reason, count(*) AS pointers,
       sum(coalesce((p.enrichment_metadata->'usage'->>'prompt_tokens')::bigint, 0)) AS prompt_tokens,
       sum(coalesce((p.enrichment_metadata->'usage'->>'cached_tokens')::bigint, 0)) AS cached_tokens,
       sum(coalesce((p.enrichment_metadata->'usage'->>'output_tokens')::bigint, 0)) AS output_tokens,
       sum(coalesce((p.enrichment_metadata->'usage'->>'thoughts_tokens')::bigint, 0)) AS thoughts_tokens,
       sum(coalesce((p.enrichment_metadata->'usage'->>'tool_use_prompt_tokens')::bigint, 0))
           AS tool_use_prompt_tokens,
       sum(coalesce((p.enrichment_metadata->>'embedding_tokens')::bigint, 0)) AS embedding_tokens
FROM stale AS s
JOIN pointers AS p ON p.id = s.id
WHERE s.reason IS NOT NULL
GROUP BY s.reason
ORDER BY s.reason;

-- name: pointers_requeue_stale
-- requeue --stale: the stale rows to pending in the backfill lane (Flex price), attempts from
-- 0. An `embedding` row keeps its description as a checkpoint (stage `described`, the mark a
-- retry reuses a paid description by) and is only embedded again; the others are described
-- again. `remake` says why, and the write-back removes it. Returns the rows moved per reason.
-- include: pointers_stale_head
, moved AS (
    UPDATE pointers AS p
    SET enrichment_status = 'pending',
        enrichment_lane = 'backfill',
        enrichment_turn = NULL,
        enrichment_attempts = 0,
        enrichment_run_after = NULL,
        enrichment_error = NULL,
        enrichment_locked_by = NULL,
        enrichment_locked_until = NULL,
        enrichment_metadata = coalesce(p.enrichment_metadata, '{}'::jsonb)
            || CASE WHEN s.reason = 'embedding'
                    THEN jsonb_build_object('remake', s.reason, 'stage', 'described')
                    ELSE jsonb_build_object('remake', s.reason) END
    FROM stale AS s
    WHERE p.id = s.id AND s.reason IS NOT NULL AND p.enrichment_status = 'complete'
    RETURNING s.reason
)
SELECT reason, count(*) AS pointers FROM moved GROUP BY reason ORDER BY reason;

-- name: pointers_model_stamps
-- `status`: complete rows per (model_version, prompt_version, embedding_model); NULL where a
-- row has no such stamp.
SELECT enrichment_metadata->>'model_version' AS model_version,
       enrichment_metadata->>'prompt_version' AS prompt_version,
       enrichment_metadata->>'embedding_model' AS embedding_model,
       count(*) AS n
FROM pointers
WHERE enrichment_status = 'complete'
GROUP BY 1, 2, 3
ORDER BY n DESC, 1, 2, 3;

-- name: pointers_compare_sample
-- compare: $1 complete rows of project $2 (NULL: all) with a description, drawn in a
-- reproducible order (md5 of the seed $3 and the id), with their page context.
SELECT p.id, p.title, p.png_path, p.description, p.cross_references::text AS cross_references,
       p.enrichment_metadata::text AS metadata, pg.page_name, pg.sheet_reflection,
       d.display_name AS discipline_name
FROM pointers AS p
LEFT JOIN pages AS pg ON pg.id = p.page_id
LEFT JOIN disciplines AS d ON d.id = pg.discipline_id
WHERE p.enrichment_status = 'complete' AND p.description <> ''
  AND ($2::uuid IS NULL OR d.project_id = $2::uuid)
ORDER BY md5($3::text || p.id::text)
LIMIT $1;

-- name: pointers_embedding_column_dimensions
-- The dimensions of pointers.embedding's type (vector(N): its typmod is N).
SELECT a.atttypmod FROM pg_attribute AS a
WHERE a.attrelid = 'public.pointers'::regclass AND a.attname = 'embedding' AND NOT a.attisdropped;

-- name: pointers_embedding_retype
-- Other dimensions (step 2 of 3): the column's new type, all NULL (the vectors were saved in
-- step 1). Formatted by model_switch.py with the quoted schema of pgvector's type and a
-- checked integer, as DDL takes no parameters. Rebuilds every index on the column, empty.
ALTER TABLE public.pointers ALTER COLUMN embedding TYPE {vector_schema}.vector({dimensions}) USING NULL;
