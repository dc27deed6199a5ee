-- Permits of one call: the permit function gains a path of its own for a batch of one call,
-- which decides what the batch statement decides for it at a fraction of its cost (its living
-- copy is sql/admission.sql). Same signature, same grants: CREATE OR REPLACE keeps them.

-- name: upgrade
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

-- name: downgrade
-- Back to revision 0011's function (a batch statement for every call).
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
