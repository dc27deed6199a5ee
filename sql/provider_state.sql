-- Statements on pgqueue_enricher_provider_state (functions: sql/definitions/admission.sql).
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
