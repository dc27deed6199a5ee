-- The doorbell: one NOTIFY on channel pointer_enrichment per statement that inserts
-- pending pointers or moves pointers to pending. The payload carries nothing: workers
-- decide what to do from the claim query alone, so a lost or duplicated notification
-- only changes when work starts, never what is done.

-- name: upgrade
CREATE OR REPLACE FUNCTION pointers_ring_doorbell_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted_rows WHERE enrichment_status = 'pending') THEN
        PERFORM pg_notify('pointer_enrichment', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION pointers_ring_doorbell_on_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.enrichment_status = 'pending' AND o.enrichment_status IS DISTINCT FROM 'pending'
    ) THEN
        PERFORM pg_notify('pointer_enrichment', '');
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS pointers_doorbell_insert ON pointers;
CREATE TRIGGER pointers_doorbell_insert
    AFTER INSERT ON pointers
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pointers_ring_doorbell_on_insert();

DROP TRIGGER IF EXISTS pointers_doorbell_update ON pointers;
CREATE TRIGGER pointers_doorbell_update
    AFTER UPDATE ON pointers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pointers_ring_doorbell_on_update();

-- name: downgrade
DROP TRIGGER IF EXISTS pointers_doorbell_update ON pointers;
DROP TRIGGER IF EXISTS pointers_doorbell_insert ON pointers;
DROP FUNCTION IF EXISTS pointers_ring_doorbell_on_update();
DROP FUNCTION IF EXISTS pointers_ring_doorbell_on_insert();
