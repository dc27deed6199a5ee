-- The doorbell: one NOTIFY on channel pointer_enrichment per statement that inserts
-- pending pointers or moves pointers to pending. The payload carries nothing: workers
-- decide what to do from the claim query alone, so a lost or duplicated notification
-- only changes when work starts, never what is done.
--
-- Current definitions (revision 0006 installs them; sql/migrations/0004_sql_api.sql has the
-- first ones). search_path is pinned empty, so every name is qualified: a session's own
-- search_path can neither break these functions nor slip another object in. Trigger
-- functions need no EXECUTE privilege to fire, so on Supabase nobody but the owner gets it.

-- name: upgrade
CREATE OR REPLACE FUNCTION public.pointers_ring_doorbell_on_insert() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted_rows WHERE enrichment_status = 'pending') THEN
        PERFORM pg_catalog.pg_notify('pointer_enrichment', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION public.pointers_ring_doorbell_on_update() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    -- Transition tables have no statistics, so a join of the two ran as a nested loop: an
    -- UPDATE of 100,000 rows took minutes. Most updates move nothing to pending (the first
    -- test stops them at once); the rest compare ids with a hashed EXCEPT, linear in size.
    IF EXISTS (SELECT 1 FROM new_rows WHERE enrichment_status = 'pending')
       AND EXISTS (
           SELECT id FROM new_rows WHERE enrichment_status = 'pending'
           EXCEPT
           SELECT id FROM old_rows WHERE enrichment_status = 'pending'
       ) THEN
        PERFORM pg_catalog.pg_notify('pointer_enrichment', '');
    END IF;
    RETURN NULL;
END
$$;

-- Where Supabase's Data API roles exist, nobody but the owner may call them (ALL on a
-- function is EXECUTE; PUBLIC includes anon). Plain Postgres keeps PUBLIC's default.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated')) THEN
        REVOKE ALL ON FUNCTION public.pointers_ring_doorbell_on_insert(), public.pointers_ring_doorbell_on_update()
            FROM PUBLIC;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        REVOKE ALL ON FUNCTION public.pointers_ring_doorbell_on_insert(), public.pointers_ring_doorbell_on_update()
            FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE ALL ON FUNCTION public.pointers_ring_doorbell_on_insert(), public.pointers_ring_doorbell_on_update()
            FROM authenticated;
    END IF;
END
$$;

DROP TRIGGER IF EXISTS pointers_doorbell_insert ON public.pointers;
CREATE TRIGGER pointers_doorbell_insert
    AFTER INSERT ON public.pointers
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.pointers_ring_doorbell_on_insert();

DROP TRIGGER IF EXISTS pointers_doorbell_update ON public.pointers;
CREATE TRIGGER pointers_doorbell_update
    AFTER UPDATE ON public.pointers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.pointers_ring_doorbell_on_update();

-- name: downgrade
DROP TRIGGER IF EXISTS pointers_doorbell_update ON public.pointers;
DROP TRIGGER IF EXISTS pointers_doorbell_insert ON public.pointers;
DROP FUNCTION IF EXISTS public.pointers_ring_doorbell_on_update();
DROP FUNCTION IF EXISTS public.pointers_ring_doorbell_on_insert();
