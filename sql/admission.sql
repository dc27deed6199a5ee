-- Provider admission: one row per provider in pgqueue_enricher_provider_state (created by
-- migration 0007) holds the fleet's gate and pause. Every worker of every machine draws its
-- permits from that row with one short statement, and reads it twice a second; nothing else
-- is shared. From psql:
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

-- name: downgrade
DROP FUNCTION IF EXISTS public.pgqueue_enricher_resume_provider(text);

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
       END::float8 AS rejected_per_minute
FROM pgqueue_enricher_provider_state
ORDER BY provider;

-- name: provider_state_acquire
-- One permit ($1 provider, $2 estimated input tokens, $3 longest wait in seconds worth
-- reserving, $4 headroom fraction of the limits, $5 additive increase of the adaptive rate
-- in requests/min): the slot is reserved only when it is at most $3 away and the provider
-- is not paused. Returns the wait until the slot, whether it was reserved, the pause, and
-- the throttle epoch the call is admitted under (see provider_state_throttle).
WITH s AS (
    SELECT provider,
           least(rpm_limit, admitted_rpm) * $4 AS rpm,
           tpm_limit * $4 AS tpm,
           greatest(next_free_at, tokens_free_at, now()) AS slot,
           paused_since IS NOT NULL AS paused,
           throttle_epoch
    FROM pgqueue_enricher_provider_state
    WHERE provider = $1
    FOR UPDATE
), reserved AS (
    UPDATE pgqueue_enricher_provider_state AS p
    SET next_free_at = CASE WHEN s.rpm IS NULL THEN p.next_free_at
            ELSE s.slot + make_interval(secs => 60.0 / s.rpm) END,
        tokens_free_at = CASE WHEN s.tpm IS NULL THEN p.tokens_free_at
            ELSE s.slot + make_interval(secs => $2::float8 * 60.0 / s.tpm) END,
        admitted_rpm = CASE WHEN p.admitted_rpm IS NULL THEN NULL
            ELSE least(p.admitted_rpm + $5::float8, coalesce(p.quota_rpm, p.admitted_rpm + $5::float8)) END,
        admitted_total = p.admitted_total + 1
    FROM s
    WHERE p.provider = s.provider AND NOT s.paused
      AND s.slot <= now() + make_interval(secs => $3::float8)
    RETURNING p.provider
)
SELECT extract(epoch FROM s.slot - now())::float8 AS wait_s,
       EXISTS (SELECT 1 FROM reserved) AS reserved,
       s.paused,
       s.throttle_epoch AS epoch
FROM s;

-- name: provider_state_correct_tokens
-- After the call ($1 provider, $2 actual minus estimated input tokens, $3 headroom): the
-- token budget is charged what the provider counted.
UPDATE pgqueue_enricher_provider_state
SET tokens_free_at = tokens_free_at + make_interval(secs => $2::float8 * 60.0 / (tpm_limit * $3))
WHERE provider = $1 AND tpm_limit IS NOT NULL;

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
