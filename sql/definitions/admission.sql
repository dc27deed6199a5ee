-- Provider admission: one row per provider in pgqueue_enricher_provider_state (created by
-- migration 0007) holds the fleet's gate and pause. Every worker of every machine draws its
-- permits from that row with short statements (one for all the calls that asked while the
-- worker's previous one ran: pgqueue_enricher/permits.py), and reads it twice a second;
-- nothing else is shared. From psql:
--   SELECT * FROM pgqueue_enricher_provider_state;            -- limits, admitted rate, pause
--   UPDATE pgqueue_enricher_provider_state SET rpm_limit = 900 WHERE provider = 'gemini';
--   SELECT pgqueue_enricher_resume_provider('gemini');        -- lift a pause by hand
-- (a worker writes its PASS2_<PROVIDER>_RPM/TPM into the row when it starts: the settings of
-- the last started worker win over an UPDATE by hand).
--
-- The gate is a GCRA (virtual scheduling): `next_free_at` is when the next request may start,
-- `tokens_free_at` when the token budget allows the next one. A permit reserves the slot
-- greatest(next_free_at, tokens_free_at, now()) and moves both on by one request's and its
-- tokens' share of a minute, so every waiter gets its own time and they start in order.

-- name: upgrade
CREATE OR REPLACE FUNCTION public.pgqueue_enricher_resume_provider(provider_name text) RETURNS boolean
LANGUAGE sql
SET search_path = ''
AS $$
    WITH resumed AS (
        UPDATE public.pgqueue_enricher_provider_state AS s
        SET paused_kind = NULL,
            paused_reason = NULL,
            paused_since = NULL,
            next_probe_at = NULL,
            probe_backoff_s = NULL,
            probe_by = NULL,
            consecutive_failures = 0,
            updated_at = pg_catalog.now()
        WHERE s.provider = pgqueue_enricher_resume_provider.provider_name AND s.paused_since IS NOT NULL
        RETURNING s.provider
    )
    SELECT pg_catalog.count(*) > 0 FROM resumed
$$;

-- Where Supabase's Data API roles exist, only the owner and service_role may call it (ALL on
-- a function is EXECUTE; PUBLIC includes anon). Plain Postgres keeps PUBLIC's default.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated')) THEN
        REVOKE ALL ON FUNCTION public.pgqueue_enricher_resume_provider(text) FROM PUBLIC;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON FUNCTION public.pgqueue_enricher_resume_provider(text) FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON FUNCTION public.pgqueue_enricher_resume_provider(text) FROM authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT ALL ON FUNCTION public.pgqueue_enricher_resume_provider(text) TO service_role;
    END IF;
END
$$;

-- The permits of a batch of calls (provider_state_acquire below, which says what it does and
-- why, as a function): plpgsql keeps the statement's plan for the session, where the workers'
-- pools (no statement cache, for poolers) would parse and plan the statement on every call,
-- which cost more than running it.
CREATE OR REPLACE FUNCTION public.pgqueue_enricher_acquire_permits(
    provider_name text,
    call_tokens double precision[],
    max_hold_s double precision,
    headroom double precision,
    increase_rpm double precision,
    token_correction double precision
) RETURNS TABLE (n bigint, slot timestamptz, wait_s double precision, reserved boolean, paused boolean, epoch bigint)
LANGUAGE plpgsql
SET search_path = ''
AS $$
#variable_conflict use_column
BEGIN
    -- This transaction's commit does not wait for the WAL flush (sql/admission.sql says why).
    PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
    IF pg_catalog.cardinality(call_tokens) = 1 THEN
        -- One call (revision 0012): what the statement below decides for a batch of one,
        -- without its numbering, running sum and search for the last reserved call, which
        -- cost more than the lock and the update themselves. Most statements are of one
        -- call: a claim of one row, a checkpoint, a permit nothing else asked beside.
        RETURN QUERY
        WITH locked AS (
            SELECT p.provider, p.next_free_at,
                   p.tpm_limit * headroom AS tpm,
                   CASE WHEN p.tpm_limit IS NULL THEN p.tokens_free_at
                       ELSE p.tokens_free_at
                           + pg_catalog.make_interval(secs => token_correction * 60.0 / (p.tpm_limit * headroom))
                   END AS tokens_free_at,
                   least(p.rpm_limit, p.admitted_rpm) * headroom AS rpm,
                   p.paused_since IS NOT NULL AS paused,
                   p.throttle_epoch
            FROM public.pgqueue_enricher_provider_state AS p
            WHERE p.provider = provider_name
            FOR UPDATE
        ), decided AS (
            SELECT s.provider, s.tpm, s.tokens_free_at, s.rpm, s.paused, s.throttle_epoch, s.slot,
                   NOT s.paused AND s.slot <= pg_catalog.now() + pg_catalog.make_interval(secs => max_hold_s)
                       AS reserved
            FROM (
                SELECT l.*, greatest(l.next_free_at, l.tokens_free_at, pg_catalog.now()) AS slot
                FROM locked AS l
            ) AS s
        ), charged AS (
            UPDATE public.pgqueue_enricher_provider_state AS p
            SET next_free_at = CASE WHEN NOT d.reserved OR d.rpm IS NULL THEN p.next_free_at
                    ELSE d.slot + pg_catalog.make_interval(secs => 60.0 / d.rpm) END,
                tokens_free_at = CASE WHEN d.tpm IS NULL THEN p.tokens_free_at
                    WHEN NOT d.reserved THEN d.tokens_free_at
                    ELSE d.slot + pg_catalog.make_interval(secs => call_tokens[1] * 60.0 / d.tpm) END,
                admitted_rpm = CASE WHEN NOT d.reserved OR p.admitted_rpm IS NULL THEN p.admitted_rpm
                    ELSE least(p.admitted_rpm + increase_rpm,
                               coalesce(p.quota_rpm, p.admitted_rpm + increase_rpm)) END,
                admitted_total = p.admitted_total + CASE WHEN d.reserved THEN 1 ELSE 0 END
            FROM decided AS d
            WHERE p.provider = d.provider AND (d.reserved OR token_correction <> 0)
            RETURNING p.provider
        )
        SELECT 1::bigint, d.slot, extract(epoch FROM d.slot - pg_catalog.now())::float8, d.reserved,
               d.paused, d.throttle_epoch
        FROM decided AS d;
        RETURN;
    END IF;
    RETURN QUERY
    WITH locked AS (
        SELECT p.provider, p.rpm_limit, p.admitted_rpm, p.quota_rpm, p.next_free_at,
               p.tpm_limit * headroom AS tpm,
               CASE WHEN p.tpm_limit IS NULL THEN p.tokens_free_at
                   ELSE p.tokens_free_at
                       + pg_catalog.make_interval(secs => token_correction * 60.0 / (p.tpm_limit * headroom))
               END AS tokens_free_at,
               p.paused_since IS NOT NULL AS paused,
               p.throttle_epoch
        FROM public.pgqueue_enricher_provider_state AS p
        WHERE p.provider = provider_name
        FOR UPDATE
    ), calls AS (
        SELECT c.n, c.tokens,
               least(l.rpm_limit, CASE WHEN c.n = 1 OR l.admitted_rpm IS NULL THEN l.admitted_rpm
                   ELSE least(l.admitted_rpm + (c.n - 1) * increase_rpm,
                              coalesce(l.quota_rpm, l.admitted_rpm + (c.n - 1) * increase_rpm)) END) * headroom
                   AS rpm
        FROM locked AS l, pg_catalog.unnest(call_tokens) WITH ORDINALITY AS c (tokens, n)
    ), gaps AS (
        SELECT c.n, c.tokens, c.rpm,
               greatest(coalesce(60.0 / c.rpm, 0), coalesce(c.tokens * 60.0 / l.tpm, 0)) AS gap
        FROM calls AS c, locked AS l
    ), decided AS (
        SELECT s.n, s.tokens, s.rpm, s.slot,
               s.open AND s.slot <= pg_catalog.now() + pg_catalog.make_interval(secs => max_hold_s) AS reserved
        FROM (
            SELECT g.n, g.tokens, g.rpm, NOT l.paused AS open,
                   greatest(l.next_free_at, l.tokens_free_at, pg_catalog.now())
                       + pg_catalog.make_interval(secs => coalesce(pg_catalog.sum(g.gap)
                           OVER (ORDER BY g.n ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) AS slot
            FROM gaps AS g, locked AS l
        ) AS s
    ), last AS (
        SELECT d.n, d.tokens, d.rpm, d.slot FROM decided AS d WHERE d.reserved ORDER BY d.n DESC LIMIT 1
    ), charged AS (
        UPDATE public.pgqueue_enricher_provider_state AS p
        SET next_free_at = CASE WHEN last.rpm IS NULL THEN p.next_free_at
                ELSE last.slot + pg_catalog.make_interval(secs => 60.0 / last.rpm) END,
            tokens_free_at = CASE WHEN l.tpm IS NULL THEN p.tokens_free_at
                WHEN last.n IS NULL THEN l.tokens_free_at
                ELSE last.slot + pg_catalog.make_interval(secs => last.tokens * 60.0 / l.tpm) END,
            admitted_rpm = CASE WHEN p.admitted_rpm IS NULL OR last.n IS NULL THEN p.admitted_rpm
                ELSE least(p.admitted_rpm + last.n * increase_rpm,
                           coalesce(p.quota_rpm, p.admitted_rpm + last.n * increase_rpm)) END,
            admitted_total = p.admitted_total + coalesce(last.n, 0)
        FROM locked AS l LEFT JOIN last ON true
        WHERE p.provider = l.provider AND (last.n IS NOT NULL OR token_correction <> 0)
        RETURNING p.provider
    )
    SELECT d.n, d.slot,
           extract(epoch FROM CASE WHEN d.reserved THEN d.slot
               ELSE pg_catalog.min(d.slot) FILTER (WHERE NOT d.reserved) OVER () END - pg_catalog.now())::float8,
           d.reserved, l.paused, l.throttle_epoch
    FROM decided AS d, locked AS l
    ORDER BY d.n;
END
$$;

-- Privileges as 0007's function: where Supabase's Data API roles exist, only the owner and
-- service_role may call it (a worker role of the operator's own is granted it with the table).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated')) THEN
        REVOKE ALL ON FUNCTION public.pgqueue_enricher_acquire_permits(text, double precision[],
            double precision, double precision, double precision, double precision) FROM PUBLIC;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON FUNCTION public.pgqueue_enricher_acquire_permits(text, double precision[],
            double precision, double precision, double precision, double precision) FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON FUNCTION public.pgqueue_enricher_acquire_permits(text, double precision[],
            double precision, double precision, double precision, double precision) FROM authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT ALL ON FUNCTION public.pgqueue_enricher_acquire_permits(text, double precision[],
            double precision, double precision, double precision, double precision) TO service_role;
    END IF;
END
$$;

-- name: downgrade
DROP FUNCTION IF EXISTS public.pgqueue_enricher_resume_provider(text);
DROP FUNCTION IF EXISTS public.pgqueue_enricher_acquire_permits(text, double precision[],
    double precision, double precision, double precision, double precision);

-- name: provider_state_configure
-- A starting worker writes its configured limits ($1 provider, $2 requests/min or NULL,
-- $3 tokens/min or NULL).
INSERT INTO pgqueue_enricher_provider_state AS p (provider, rpm_limit, tpm_limit)
VALUES ($1, $2::float8, $3::float8)
ON CONFLICT (provider) DO UPDATE
SET rpm_limit = excluded.rpm_limit, tpm_limit = excluded.tpm_limit, updated_at = now()
WHERE p.rpm_limit IS DISTINCT FROM excluded.rpm_limit OR p.tpm_limit IS DISTINCT FROM excluded.tpm_limit;

-- name: provider_state_read
-- Every provider's state as the workers cache it and `status` prints it. The 429 rate is a
-- sliding-minute estimate from two one-minute buckets.
SELECT provider, rpm_limit, tpm_limit, admitted_rpm, quota_rpm, throttle_epoch,
       consecutive_failures, paused_kind, paused_reason, paused_since, next_probe_at,
       extract(epoch FROM next_probe_at - now())::float8 AS next_probe_in_s, probe_by,
       admitted_total, rejected_total,
       CASE
           WHEN now() - rejected_minute_start >= interval '2 minutes' THEN 0
           WHEN now() - rejected_minute_start >= interval '1 minute'
               THEN rejected_this_minute * greatest(0, 2 - extract(epoch FROM now() - rejected_minute_start) / 60)
           ELSE rejected_this_minute + rejected_last_minute
               * greatest(0, 1 - extract(epoch FROM now() - rejected_minute_start) / 60)
       END::float8 AS rejected_per_minute,
       extract(epoch FROM now() - last_cut_at)::float8 AS last_cut_s
FROM pgqueue_enricher_provider_state
ORDER BY provider;

-- name: provider_state_forget_quota
-- Forget the quota the provider named ($1 provider) once the adaptive rate has not been cut
-- for $2 seconds: the project's quota may have been raised since (Google raises quotas on
-- request), and a remembered quota caps the adaptive rate for good. Without it the rate
-- grows again until a refusal names the quota anew. A quota with no cut on record (set by
-- hand) stays. Returns the quota forgotten, once: the first worker to run it, for the log.
UPDATE pgqueue_enricher_provider_state AS p
SET quota_rpm = NULL, updated_at = now()
FROM (SELECT provider, quota_rpm FROM pgqueue_enricher_provider_state WHERE provider = $1 FOR UPDATE) AS old
WHERE p.provider = old.provider AND p.quota_rpm IS NOT NULL
  AND now() - p.last_cut_at >= make_interval(secs => $2::float8)
RETURNING old.quota_rpm;

-- name: provider_permits_callable
-- Whether this role may call pgqueue_enricher_acquire_permits (a database migrated to 0011,
-- and the function granted): the workers then draw their permits through it.
SELECT coalesce(pg_catalog.has_function_privilege(pg_catalog.to_regprocedure(
    'public.pgqueue_enricher_acquire_permits(text, double precision[], double precision, '
    'double precision, double precision, double precision)')::oid, 'EXECUTE'), false);

-- name: provider_permits_acquire
-- provider_state_acquire through the function that keeps its plan (same parameters, same rows).
SELECT n, slot, wait_s, reserved, paused, epoch
FROM public.pgqueue_enricher_acquire_permits($1, $2::float8[], $3, $4, $5, $6);

-- name: provider_state_acquire
-- The permits of a batch of calls from one worker, in one statement ($1 provider, $2 the
-- estimated input tokens of each call, in the order they asked, $3 longest wait in seconds
-- worth reserving, $4 headroom fraction of the limits, $5 additive increase of the adaptive
-- rate per admitted call in requests/min, $6 input tokens to charge first: what the provider
-- counted minus what was estimated for this worker's earlier calls). Every call gets its own
-- slot, the one it would have got with a statement of its own, in turn: a call starts when
-- the call before it has used its share of a minute at the rate after the increases of the
-- calls before it, and its tokens' share of the token budget. A slot is reserved only when it
-- is at most $3 away and the provider is not paused, so the reserved calls are a prefix of
-- the batch, and a refused call is told the first slot left. One row per call: its slot, the
-- wait until it, whether it was reserved, the pause, and the throttle epoch the call is
-- admitted under (see provider_state_throttle). With no calls ($2 empty) it only charges $6.
--
-- Its commit does not wait for the WAL flush (synchronous_commit off for this statement's own
-- transaction only; the statement must not run inside a caller's transaction): the new
-- schedule is visible to every worker at once all the same, and only a crash of Postgres
-- before the WAL writer (or any worker's next ordinary commit) flushes it can lose the last
-- reservations, about wal_writer_delay of them at most, which the gate's headroom covers.
-- Waiting for the flush behind the queue's own 8 KB writes made a permit cost as much as a
-- pointer write (permits.py).
--
-- Since revision 0011 the workers run this as the function pgqueue_enricher_acquire_permits
-- (the upgrade block above), whose body is this statement; this copy serves a database not
-- yet migrated to 0011, or a role not granted the function. Since revision 0012 a batch of one
-- call takes a shorter path of the function's own. tests/test_permits.py checks that the
-- function (both paths) and this statement give the same slots and leave the same schedule.
WITH relaxed AS MATERIALIZED (
    SELECT pg_catalog.set_config('synchronous_commit', 'off', true) AS synchronous_commit
), locked AS (
    SELECT p.provider, p.rpm_limit, p.admitted_rpm, p.quota_rpm, p.next_free_at,
           p.tpm_limit * $4 AS tpm,
           CASE WHEN p.tpm_limit IS NULL THEN p.tokens_free_at
               ELSE p.tokens_free_at + make_interval(secs => $6::float8 * 60.0 / (p.tpm_limit * $4)) END
               AS tokens_free_at,
           p.paused_since IS NOT NULL AS paused,
           p.throttle_epoch
    FROM pgqueue_enricher_provider_state AS p, relaxed
    WHERE p.provider = $1
    FOR UPDATE OF p
), calls AS (
    -- The request rate call n is admitted under (least() skips a NULL: either limit alone).
    SELECT c.n, c.tokens,
           least(l.rpm_limit, CASE WHEN c.n = 1 OR l.admitted_rpm IS NULL THEN l.admitted_rpm
               ELSE least(l.admitted_rpm + (c.n - 1) * $5::float8,
                          coalesce(l.quota_rpm, l.admitted_rpm + (c.n - 1) * $5::float8)) END) * $4 AS rpm
    FROM locked AS l, unnest($2::float8[]) WITH ORDINALITY AS c (tokens, n)
), gaps AS (
    -- How far call n moves the schedule on: its request share, its tokens' share, the larger.
    SELECT c.n, c.tokens, c.rpm,
           greatest(coalesce(60.0 / c.rpm, 0), coalesce(c.tokens * 60.0 / l.tpm, 0)) AS gap
    FROM calls AS c, locked AS l
), decided AS (
    SELECT s.n, s.tokens, s.rpm, s.slot,
           s.open AND s.slot <= now() + make_interval(secs => $3::float8) AS reserved
    FROM (
        SELECT g.n, g.tokens, g.rpm, NOT l.paused AS open,
               greatest(l.next_free_at, l.tokens_free_at, now()) + make_interval(secs => coalesce(
                   sum(g.gap) OVER (ORDER BY g.n ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))
                   AS slot
        FROM gaps AS g, locked AS l
    ) AS s
), last AS (
    SELECT n, tokens, rpm, slot FROM decided WHERE reserved ORDER BY n DESC LIMIT 1
), charged AS (
    UPDATE pgqueue_enricher_provider_state AS p
    SET next_free_at = CASE WHEN last.rpm IS NULL THEN p.next_free_at
            ELSE last.slot + make_interval(secs => 60.0 / last.rpm) END,
        tokens_free_at = CASE WHEN l.tpm IS NULL THEN p.tokens_free_at
            WHEN last.n IS NULL THEN l.tokens_free_at
            ELSE last.slot + make_interval(secs => last.tokens * 60.0 / l.tpm) END,
        admitted_rpm = CASE WHEN p.admitted_rpm IS NULL OR last.n IS NULL THEN p.admitted_rpm
            ELSE least(p.admitted_rpm + last.n * $5::float8,
                       coalesce(p.quota_rpm, p.admitted_rpm + last.n * $5::float8)) END,
        admitted_total = p.admitted_total + coalesce(last.n, 0)
    FROM locked AS l LEFT JOIN last ON true
    WHERE p.provider = l.provider AND (last.n IS NOT NULL OR $6::float8 <> 0)
    RETURNING p.provider
)
SELECT d.n, d.slot,
       extract(epoch FROM CASE WHEN d.reserved THEN d.slot
           ELSE min(d.slot) FILTER (WHERE NOT d.reserved) OVER () END - now())::float8 AS wait_s,
       d.reserved, l.paused, l.throttle_epoch AS epoch
FROM decided AS d, locked AS l
ORDER BY d.n;

-- name: provider_state_throttle
-- A per-minute quota refusal ($1 provider, $2 throttle epoch the refused call was admitted
-- under, $3 the per-minute request quota the provider named or NULL, $4 decrease factor,
-- $5 starting rate when none is known, $6 lowest rate, $7 milder factor, $8 decrease window
-- in seconds). Multiplicative decrease, once per epoch and at most once per window
-- fleet-wide (as TCP cuts once per round trip): refusals of calls admitted before the last
-- decrease were caused by the old rate, and a burst of refusals within the window (or
-- random ones that name no quota) is one signal, not many. When a configured limit is within the quota the
-- provider names, a refusal is jitter or a neighbour on the same project: the milder factor.
-- Returns the new admitted rate and the wait for the next slot.
WITH old AS (
    SELECT provider, throttle_epoch, rejected_minute_start,
           $2::bigint >= throttle_epoch
               AND (last_cut_at IS NULL OR now() - last_cut_at >= make_interval(secs => $8::float8)) AS cut
    FROM pgqueue_enricher_provider_state
    WHERE provider = $1
    FOR UPDATE
)
UPDATE pgqueue_enricher_provider_state AS p
SET quota_rpm = coalesce($3::float8, p.quota_rpm),
    admitted_rpm = CASE
        WHEN NOT old.cut THEN p.admitted_rpm
        WHEN p.rpm_limit IS NOT NULL AND p.rpm_limit <= coalesce($3::float8, p.quota_rpm)
            THEN greatest($6::float8, least(coalesce(p.admitted_rpm, p.rpm_limit), p.rpm_limit) * $7)
        WHEN p.admitted_rpm IS NULL
            THEN least(coalesce($3::float8, p.quota_rpm, $5::float8) * $4, coalesce(p.rpm_limit, 'infinity'))
        ELSE greatest($6::float8, p.admitted_rpm * $4)
    END,
    throttle_epoch = CASE WHEN old.cut THEN old.throttle_epoch + 1 ELSE old.throttle_epoch END,
    last_cut_at = CASE WHEN old.cut THEN now() ELSE p.last_cut_at END,
    rejected_total = p.rejected_total + 1,
    rejected_last_minute = CASE
        WHEN now() - old.rejected_minute_start >= interval '2 minutes' THEN 0
        WHEN now() - old.rejected_minute_start >= interval '1 minute' THEN p.rejected_this_minute
        ELSE p.rejected_last_minute END,
    rejected_this_minute = CASE WHEN now() - old.rejected_minute_start >= interval '1 minute' THEN 1
        ELSE p.rejected_this_minute + 1 END,
    rejected_minute_start = CASE WHEN now() - old.rejected_minute_start >= interval '1 minute' THEN now()
        ELSE old.rejected_minute_start END,
    updated_at = now()
FROM old
WHERE p.provider = old.provider
RETURNING p.admitted_rpm, p.throttle_epoch,
          extract(epoch FROM greatest(p.next_free_at, p.tokens_free_at, now()) - now())::float8 AS next_slot_s;

-- name: provider_state_fail
-- A failure that is not the row's ($1 provider, $2 how many in a row pause the provider,
-- $3 kind, $4 reason, $5 seconds to the first probe, $6 probe backoff base in seconds):
-- counts consecutive failures fleet-wide and pauses the provider at the threshold (1 for a
-- refused key, an unknown model or a spent daily quota). Returns whether the provider is
-- paused and whether this statement paused it (so that one worker logs it, once).
WITH old AS (
    SELECT provider, paused_since
    FROM pgqueue_enricher_provider_state
    WHERE provider = $1
    FOR UPDATE
), decided AS (
    SELECT old.provider, old.paused_since IS NULL AND p.consecutive_failures + 1 >= $2 AS pause
    FROM old JOIN pgqueue_enricher_provider_state AS p ON p.provider = old.provider
)
UPDATE pgqueue_enricher_provider_state AS p
SET consecutive_failures = p.consecutive_failures + 1,
    paused_kind = CASE WHEN d.pause THEN $3 ELSE p.paused_kind END,
    paused_reason = CASE WHEN d.pause THEN $4 ELSE p.paused_reason END,
    paused_since = CASE WHEN d.pause THEN now() ELSE p.paused_since END,
    next_probe_at = CASE WHEN d.pause THEN now() + make_interval(secs => $5::float8) ELSE p.next_probe_at END,
    probe_backoff_s = CASE WHEN d.pause THEN $6::float8 ELSE p.probe_backoff_s END,
    probe_by = CASE WHEN d.pause THEN NULL ELSE p.probe_by END,
    updated_at = now()
FROM decided AS d
WHERE p.provider = d.provider
RETURNING p.paused_since IS NOT NULL AS paused, d.pause AS started, p.consecutive_failures,
          extract(epoch FROM p.next_probe_at - now())::float8 AS next_probe_in_s;

-- name: provider_state_succeed
-- The provider answered ($1 provider, $2 seconds since the call was let go): the run of
-- failures ends and any pause is lifted, but only by a call begun after the pause did (the
-- probe): a call in flight since before it may answer during an outage and says nothing about
-- the provider now. Returns whether a pause was lifted, since when it had lasted, and whether
-- the provider is still paused.
WITH old AS (
    SELECT provider, paused_since, paused_kind,
           paused_since IS NULL OR paused_since <= now() - make_interval(secs => $2::float8) AS lift
    FROM pgqueue_enricher_provider_state
    WHERE provider = $1
    FOR UPDATE
)
UPDATE pgqueue_enricher_provider_state AS p
SET consecutive_failures = CASE WHEN old.lift THEN 0 ELSE p.consecutive_failures END,
    paused_kind = CASE WHEN old.lift THEN NULL ELSE p.paused_kind END,
    paused_reason = CASE WHEN old.lift THEN NULL ELSE p.paused_reason END,
    paused_since = CASE WHEN old.lift THEN NULL ELSE p.paused_since END,
    next_probe_at = CASE WHEN old.lift THEN NULL ELSE p.next_probe_at END,
    probe_backoff_s = CASE WHEN old.lift THEN NULL ELSE p.probe_backoff_s END,
    probe_by = CASE WHEN old.lift THEN NULL ELSE p.probe_by END,
    updated_at = now()
FROM old
WHERE p.provider = old.provider
RETURNING old.paused_since IS NOT NULL AND old.lift AS resumed, old.paused_kind,
          extract(epoch FROM now() - old.paused_since)::float8 AS paused_s,
          p.paused_since IS NOT NULL AS paused;

-- name: provider_state_probe_take
-- One worker of the fleet probes a paused provider ($1 provider, $2 worker, $3 longest
-- backoff in seconds): the first to ask once the probe is due gets it, and the next probe
-- is moved a doubled backoff away, so the fleet probes at most once per backoff interval.
UPDATE pgqueue_enricher_provider_state
SET probe_by = $2,
    probe_backoff_s = least(coalesce(probe_backoff_s, 30) * 2, $3::float8),
    next_probe_at = now() + make_interval(secs => least(coalesce(probe_backoff_s, 30) * 2, $3::float8)),
    updated_at = now()
WHERE provider = $1 AND paused_since IS NOT NULL AND next_probe_at <= now()
RETURNING provider;
