-- Revision 0009 (frozen): the registry of live workers. `status` reads it instead of
-- pg_stat_activity, whose application_name a pooler's shared server connections keep.

-- name: upgrade
CREATE TABLE IF NOT EXISTS pgqueue_enricher_workers (
    worker_id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    version text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    -- heartbeat_at plus a few heartbeat intervals: a worker that stops beating is not live
    -- after this, whichever interval it used.
    expires_at timestamptz NOT NULL,
    in_flight integer NOT NULL DEFAULT 0,
    listener_state text NOT NULL DEFAULT 'starting',
    provider_pause text
);

-- Supabase exposes schema public to the anon key: nothing here is for the Data API.
ALTER TABLE pgqueue_enricher_workers ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON TABLE pgqueue_enricher_workers FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON TABLE pgqueue_enricher_workers FROM authenticated;
    END IF;
END
$$;

-- name: downgrade
DROP TABLE IF EXISTS pgqueue_enricher_workers;
