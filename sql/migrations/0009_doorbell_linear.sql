-- Revision 0010, frozen as released: the update doorbell no longer joins its transition
-- tables (a nested loop with no statistics: an UPDATE of 100,000 pointers ran for minutes).
-- The living definition is sql/doorbell.sql. CREATE OR REPLACE keeps the function's
-- privileges as 0006 left them.

-- name: upgrade
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

-- name: downgrade
-- The previous definition was correct, only slow: the new one serves 0009 as well.
SELECT 1;
