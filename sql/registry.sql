-- The worker registry's statements (table pgqueue_enricher_workers, revision 0009), loaded
-- by pgqueue_enricher.registry. Parameters are positional and documented per block.

-- name: workers_beat
-- Register or refresh worker $1 ($2 host, $3 pid, $4 version, $5 in flight, $6 listener
-- state, $7 provider pause or NULL, $8 seconds until it counts as gone). An upsert, so a
-- worker whose row expired during an outage comes back with its first heartbeat. Rows of
-- workers that stopped beating are deleted on the way.
WITH expired AS (
    DELETE FROM pgqueue_enricher_workers
    WHERE expires_at < now() AND worker_id <> $1
)
INSERT INTO pgqueue_enricher_workers AS w
    (worker_id, host, pid, version, started_at, heartbeat_at, expires_at, in_flight,
     listener_state, provider_pause)
VALUES ($1, $2, $3, $4, now(), now(), now() + make_interval(secs => $8), $5, $6, $7)
ON CONFLICT (worker_id) DO UPDATE
SET host = excluded.host,
    pid = excluded.pid,
    version = excluded.version,
    heartbeat_at = excluded.heartbeat_at,
    expires_at = excluded.expires_at,
    in_flight = excluded.in_flight,
    listener_state = excluded.listener_state,
    provider_pause = excluded.provider_pause;

-- name: workers_remove
-- A clean stop ($1 worker id).
DELETE FROM pgqueue_enricher_workers WHERE worker_id = $1;

-- name: workers_live
-- Live workers, with the rows each holds under an unexpired lease (the database's own count,
-- fresher than the worker's last report).
SELECT w.worker_id, w.host, w.pid, w.version, w.started_at, w.heartbeat_at, w.listener_state,
       w.provider_pause, w.in_flight AS reported_in_flight, coalesce(held.n, 0) AS in_flight
FROM pgqueue_enricher_workers AS w
LEFT JOIN (
    SELECT enrichment_locked_by AS worker_id, count(*) AS n
    FROM pointers
    WHERE enrichment_status = 'processing' AND enrichment_locked_until > now()
    GROUP BY enrichment_locked_by
) AS held ON held.worker_id = w.worker_id
WHERE w.expires_at > now()
ORDER BY w.worker_id;
