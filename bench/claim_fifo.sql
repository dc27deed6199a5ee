-- The claim as it was before revision 0008 (oldest first across all projects), kept
-- only as the baseline of bench/claim_latency.py.
-- Claim up to $1 pending rows for worker $2 with a lease of $3 seconds, oldest first,
-- skipping rows locked by other claimers and rows waiting for a retry. The page context
-- is joined after the claim (LEFT JOIN) so that a pointer whose page or discipline row
-- is missing is still claimed, and then failed with a reason, instead of blocking.
WITH candidates AS (
    SELECT id
    FROM pointers
    WHERE enrichment_status = 'pending'
      AND (enrichment_run_after IS NULL OR enrichment_run_after <= now())
    ORDER BY created_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE pointers AS p
    SET enrichment_status = 'processing',
        enrichment_locked_by = $2,
        enrichment_locked_until = now() + make_interval(secs => $3),
        enrichment_attempts = p.enrichment_attempts + 1
    FROM candidates
    WHERE p.id = candidates.id
    RETURNING p.id, p.page_id, p.title, p.png_path, p.enrichment_attempts,
              p.description, p.cross_references, p.enrichment_metadata, p.created_at
)
SELECT claimed.id, claimed.title, claimed.png_path, claimed.enrichment_attempts AS attempt,
       claimed.description, claimed.cross_references::text AS cross_references,
       claimed.enrichment_metadata::text AS metadata,
       pg.id IS NOT NULL AS page_found, pg.page_name, pg.sheet_reflection,
       d.id IS NOT NULL AS discipline_found, d.display_name AS discipline_name
FROM claimed
LEFT JOIN pages AS pg ON pg.id = claimed.page_id
LEFT JOIN disciplines AS d ON d.id = pg.discipline_id
ORDER BY claimed.created_at, claimed.id;
