-- Provider admission: one row per provider in pgqueue_enricher_provider_state holds the fleet's
-- schedule, adaptive rate and pause. A gated call asks pgqueue_enricher_permit once; its outcome
-- (a quota refusal, a failure, a success after failures) is one of the statements below. From psql:
--   SELECT * FROM pgqueue_enricher_provider_state;            -- limits, admitted rate, pause
--   SELECT pgqueue_enricher_resume_provider('gemini');        -- lift a pause by hand
-- (a starting worker writes its PASS2_<PROVIDER>_RPM/TPM into the row: they win over an UPDATE).

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

-- The permit of one call. The schedule is a GCRA (virtual scheduling): `next_free_at` is when
-- the next request may start, `tokens_free_at` when the token budget allows the next one. The
-- call's slot is greatest(next_free_at, tokens_free_at, now()); reserving it moves both on by
-- one request's share of a minute at least(rpm_limit, admitted_rpm) and by the call's tokens'
-- share of tpm_limit (each scaled by `headroom`), so every waiter of the fleet gets its own
-- time. A slot more than `max_hold_s` away is not reserved: the caller is told the wait. Each
-- reservation raises the adaptive rate by `increase_rpm`, never above the quota the provider
-- named (quota_rpm). `token_correction` (what the provider counted minus this worker's earlier
-- estimates) is charged first; with `tokens` NULL that is all the call does. While the provider
-- is paused, the first call to ask once the probe is due is the fleet's probe (granted, and the
-- next probe moved a doubled backoff away, at most `probe_max_s`); every other call is refused.
CREATE OR REPLACE FUNCTION public.pgqueue_enricher_permit(
    provider_name text,
    tokens double precision,
    token_correction double precision,
    max_hold_s double precision,
    headroom double precision,
    increase_rpm double precision,
    worker_id text,
    probe_max_s double precision
) RETURNS TABLE (reserved boolean, wait_s double precision, paused boolean, probe boolean, epoch bigint)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    s public.pgqueue_enricher_provider_state;
    asked_at timestamptz := pg_catalog.now();
    slot timestamptz;
    rpm double precision;
    tpm double precision;
BEGIN
    SELECT * INTO s FROM public.pgqueue_enricher_provider_state AS p
    WHERE p.provider = provider_name
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    tpm := s.tpm_limit * headroom;
    rpm := least(s.rpm_limit, s.admitted_rpm) * headroom;
    IF tpm IS NOT NULL THEN
        s.tokens_free_at := s.tokens_free_at + pg_catalog.make_interval(secs => token_correction * 60.0 / tpm);
    END IF;
    reserved := false; probe := false; wait_s := 0;
    paused := s.paused_since IS NOT NULL; epoch := s.throttle_epoch;
    IF tokens IS NULL THEN
        NULL;
    ELSIF paused AND s.next_probe_at <= asked_at THEN
        s.probe_backoff_s := least(coalesce(s.probe_backoff_s, 30) * 2, probe_max_s);
        s.next_probe_at := asked_at + pg_catalog.make_interval(secs => s.probe_backoff_s);
        s.probe_by := worker_id;
        reserved := true; probe := true;
    ELSIF paused THEN
        wait_s := pg_catalog.date_part('epoch', s.next_probe_at - asked_at);
    ELSE
        slot := greatest(s.next_free_at, s.tokens_free_at, asked_at);
        wait_s := pg_catalog.date_part('epoch', slot - asked_at);
        reserved := wait_s <= max_hold_s;
        IF reserved THEN
            s.next_free_at := coalesce(slot + pg_catalog.make_interval(secs => 60.0 / rpm), s.next_free_at);
            s.tokens_free_at := coalesce(slot + pg_catalog.make_interval(secs => tokens * 60.0 / tpm), s.tokens_free_at);
            IF s.admitted_rpm IS NOT NULL THEN
                s.admitted_rpm := least(s.admitted_rpm + increase_rpm, coalesce(s.quota_rpm, 'infinity'));
            END IF;
            s.admitted_total := s.admitted_total + 1;
        END IF;
    END IF;
    IF reserved OR token_correction <> 0 THEN
        UPDATE public.pgqueue_enricher_provider_state AS p
        SET next_free_at = s.next_free_at, tokens_free_at = s.tokens_free_at, admitted_rpm = s.admitted_rpm,
            admitted_total = s.admitted_total, next_probe_at = s.next_probe_at,
            probe_backoff_s = s.probe_backoff_s, probe_by = s.probe_by
        WHERE p.provider = provider_name;
    END IF;
    RETURN NEXT;
END
$$;

-- Where Supabase's Data API roles exist, only the owner and service_role may call the functions
-- (ALL on a function is EXECUTE; PUBLIC includes anon). Plain Postgres keeps PUBLIC's default.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated')) THEN
        REVOKE ALL ON FUNCTION public.pgqueue_enricher_resume_provider(text),
            public.pgqueue_enricher_permit(text, double precision, double precision, double precision,
                double precision, double precision, text, double precision) FROM PUBLIC;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON FUNCTION public.pgqueue_enricher_resume_provider(text),
            public.pgqueue_enricher_permit(text, double precision, double precision, double precision,
                double precision, double precision, text, double precision) FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON FUNCTION public.pgqueue_enricher_resume_provider(text),
            public.pgqueue_enricher_permit(text, double precision, double precision, double precision,
                double precision, double precision, text, double precision) FROM authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        GRANT ALL ON FUNCTION public.pgqueue_enricher_resume_provider(text),
            public.pgqueue_enricher_permit(text, double precision, double precision, double precision,
                double precision, double precision, text, double precision) TO service_role;
    END IF;
END
$$;

-- name: downgrade
DROP FUNCTION IF EXISTS public.pgqueue_enricher_resume_provider(text);
DROP FUNCTION IF EXISTS public.pgqueue_enricher_permit(text, double precision, double precision,
    double precision, double precision, double precision, text, double precision);

-- name: provider_state_configure
-- A starting worker writes its limits ($1 provider, $2 requests/min, $3 tokens/min; NULL: none).
INSERT INTO pgqueue_enricher_provider_state AS p (provider, rpm_limit, tpm_limit)
VALUES ($1, $2::float8, $3::float8)
ON CONFLICT (provider) DO UPDATE
SET rpm_limit = excluded.rpm_limit, tpm_limit = excluded.tpm_limit, updated_at = now()
WHERE p.rpm_limit IS DISTINCT FROM excluded.rpm_limit OR p.tpm_limit IS DISTINCT FROM excluded.tpm_limit;

-- name: provider_state_read
-- Every provider's state as the workers cache it and `status` prints it. The 429 rate is a
-- sliding-minute estimate from two one-minute buckets.
SELECT provider, rpm_limit, tpm_limit, admitted_rpm, quota_rpm, throttle_epoch AS epoch,
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

-- name: provider_state_permit
-- One gated call's permit ($1-$8: pgqueue_enricher_permit above says what each one means).
SELECT reserved, wait_s, paused, probe, epoch
FROM public.pgqueue_enricher_permit($1, $2, $3, $4, $5, $6, $7, $8);

-- name: provider_state_forget_quota
-- Forget the quota the provider named ($1 provider) once the adaptive rate has not been cut
-- for $2 seconds: the project's quota may have been raised since, and a remembered quota caps
-- the adaptive rate for good. A quota with no cut on record (set by hand) stays. Returns the
-- quota forgotten, once: to the first worker to run it, for the log.
UPDATE pgqueue_enricher_provider_state AS p
SET quota_rpm = NULL, updated_at = now()
FROM (SELECT provider, quota_rpm FROM pgqueue_enricher_provider_state WHERE provider = $1 FOR UPDATE) AS old
WHERE p.provider = old.provider AND p.quota_rpm IS NOT NULL
  AND now() - p.last_cut_at >= make_interval(secs => $2::float8)
RETURNING old.quota_rpm;

-- name: provider_state_throttle
-- A per-minute quota refusal ($1 provider, $2 throttle epoch the refused call was admitted
-- under, $3 the per-minute request quota the provider named or NULL, $4 decrease factor,
-- $5 starting rate when none is known, $6 lowest rate, $7 milder factor, $8 decrease window
-- in seconds). Multiplicative decrease, once per epoch and window fleet-wide (as TCP cuts
-- once per round trip): refusals of calls admitted before the last cut were caused by the old
-- rate, and a burst of refusals is one signal. A configured limit within the named quota cuts
-- by the milder factor. Returns the new admitted rate and the wait for the next slot.
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
WITH decided AS (
    SELECT provider, paused_since IS NULL AND consecutive_failures + 1 >= $2 AS pause
    FROM pgqueue_enricher_provider_state
    WHERE provider = $1
    FOR UPDATE
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
-- the provider now. Returns whether a pause was lifted and how long it had lasted; no row
-- when the pause stands.
WITH old AS (
    SELECT provider, paused_since, paused_kind
    FROM pgqueue_enricher_provider_state
    WHERE provider = $1
    FOR UPDATE
)
UPDATE pgqueue_enricher_provider_state AS p
SET consecutive_failures = 0, paused_kind = NULL, paused_reason = NULL, paused_since = NULL,
    next_probe_at = NULL, probe_backoff_s = NULL, probe_by = NULL, updated_at = now()
FROM old
WHERE p.provider = old.provider
  AND (old.paused_since IS NULL OR old.paused_since <= now() - make_interval(secs => $2::float8))
RETURNING old.paused_since IS NOT NULL AS resumed, old.paused_kind,
          extract(epoch FROM now() - old.paused_since)::float8 AS paused_s;
