-- Provider admission: the fleet-wide gate and pause, one row per provider, and the function
-- that lifts a pause by hand (its living copy is sql/admission.sql).

-- name: upgrade
CREATE TABLE IF NOT EXISTS public.pgqueue_enricher_provider_state (
    provider text PRIMARY KEY CHECK (provider IN ('gemini', 'voyage')),
    rpm_limit double precision CHECK (rpm_limit > 0),
    tpm_limit double precision CHECK (tpm_limit > 0),
    admitted_rpm double precision,
    quota_rpm double precision,
    throttle_epoch bigint NOT NULL DEFAULT 0,
    last_cut_at timestamptz,
    next_free_at timestamptz NOT NULL DEFAULT now(),
    tokens_free_at timestamptz NOT NULL DEFAULT now(),
    admitted_total bigint NOT NULL DEFAULT 0,
    rejected_total bigint NOT NULL DEFAULT 0,
    rejected_minute_start timestamptz NOT NULL DEFAULT now(),
    rejected_this_minute integer NOT NULL DEFAULT 0,
    rejected_last_minute integer NOT NULL DEFAULT 0,
    consecutive_failures integer NOT NULL DEFAULT 0,
    paused_kind text,
    paused_reason text,
    paused_since timestamptz,
    next_probe_at timestamptz,
    probe_backoff_s double precision,
    probe_by text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgqueue_enricher_provider_state IS
    'pgqueue-enricher provider admission: fleet-wide limits (rpm_limit, tpm_limit), adaptive '
    'rate (admitted_rpm) and pause (paused_kind, paused_reason, paused_since, next_probe_at); '
    'lift a pause with SELECT pgqueue_enricher_resume_provider(''gemini'')';
INSERT INTO pgqueue_enricher_provider_state (provider) VALUES ('gemini'), ('voyage')
ON CONFLICT (provider) DO NOTHING;

ALTER TABLE pgqueue_enricher_provider_state ENABLE ROW LEVEL SECURITY;
-- The workers' roles (granted the table by the operator) see and change the rows; the roles
-- Supabase gives its API keys never do, even if a grant were added later.
DROP POLICY IF EXISTS pgqueue_enricher_provider_state_workers ON pgqueue_enricher_provider_state;
CREATE POLICY pgqueue_enricher_provider_state_workers ON pgqueue_enricher_provider_state
    USING (current_user NOT IN ('anon', 'authenticated'))
    WITH CHECK (current_user NOT IN ('anon', 'authenticated'));
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON pgqueue_enricher_provider_state FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON pgqueue_enricher_provider_state FROM authenticated;
    END IF;
END
$$;

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
DROP TABLE IF EXISTS public.pgqueue_enricher_provider_state;
