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
