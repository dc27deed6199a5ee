-- What `pgqueue-enricher doctor` reads (pgqueue_enricher.ops.doctor). Every block only reads
-- the catalogs or the tables: doctor changes no row. Parameters are positional ($1, ...).

-- name: server_describe
-- The server's version and the database connected to, for the first check's line.
SELECT current_setting('server_version') AS version, current_database() AS database, current_user AS role;

-- name: schema_version_table_exists
-- Whether `migrate` ever ran here (its version table exists).
SELECT to_regclass('public.pgqueue_enricher_alembic_version') IS NOT NULL;

-- name: role_missing_privileges
-- What `run` needs and the connected role lacks: table privileges on what the worker reads
-- and writes, EXECUTE on the functions it calls, and USAGE on schema public. An object that
-- does not exist is reported as missing (the schema check then says to migrate).
WITH needed (kind, object, privilege) AS (
    VALUES
        ('schema', 'public', 'USAGE'),
        ('table', 'public.pointers', 'SELECT'),
        ('table', 'public.pointers', 'UPDATE'),
        ('table', 'public.pages', 'SELECT'),
        ('table', 'public.disciplines', 'SELECT'),
        ('table', 'public.pgqueue_enricher_workers', 'SELECT'),
        ('table', 'public.pgqueue_enricher_workers', 'INSERT'),
        ('table', 'public.pgqueue_enricher_workers', 'UPDATE'),
        ('table', 'public.pgqueue_enricher_workers', 'DELETE'),
        ('table', 'public.pgqueue_enricher_provider_state', 'SELECT'),
        ('table', 'public.pgqueue_enricher_provider_state', 'INSERT'),
        ('table', 'public.pgqueue_enricher_provider_state', 'UPDATE'),
        ('table', 'public.pgqueue_enricher_lane_tiers', 'SELECT'),
        ('table', 'public.pgqueue_enricher_lane_tiers', 'INSERT'),
        ('table', 'public.pgqueue_enricher_lane_tiers', 'UPDATE'),
        ('table', 'public.pgqueue_enricher_embedding_switch', 'SELECT'),
        ('table', 'public.pgqueue_enricher_embedding_shadow', 'INSERT'),
        ('table', 'public.pgqueue_enricher_embedding_shadow', 'UPDATE'),
        ('function', 'public.pgqueue_enricher_permit(text, double precision, double precision, '
            'double precision, double precision, double precision, text, double precision)', 'EXECUTE')
)
SELECT kind, object, privilege,
       CASE kind
           WHEN 'table' THEN to_regclass(object) IS NOT NULL
           WHEN 'function' THEN to_regprocedure(object) IS NOT NULL
           ELSE to_regnamespace(object) IS NOT NULL
       END AS exists
FROM needed
WHERE CASE kind
    WHEN 'table' THEN to_regclass(object) IS NULL
        OR NOT has_table_privilege(to_regclass(object), privilege)
    WHEN 'function' THEN to_regprocedure(object) IS NULL
        OR NOT has_function_privilege(to_regprocedure(object), privilege)
    ELSE to_regnamespace(object) IS NULL
        OR NOT has_schema_privilege(to_regnamespace(object), privilege)
END;

-- name: vector_extension
-- The installed pgvector version (NULL without it) and the type of pointers.embedding as
-- Postgres prints it (e.g. `vector(1024)`; NULL when the column or the table is missing).
SELECT
    (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vector') AS version,
    (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod)
     FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = to_regclass('public.pointers') AND a.attname = 'embedding'
       AND NOT a.attisdropped) AS embedding_type;

-- name: vector_indexes
-- Every index on pointers whose key includes `embedding`: its name, access method, operator
-- class of the embedding column, `lists` (ivfflat) and whether it is valid (a failed CREATE
-- INDEX CONCURRENTLY leaves it invalid).
SELECT i.relname AS name,
       am.amname AS method,
       (SELECT opc.opcname
        FROM generate_subscripts(ix.indkey, 1) AS k
        JOIN pg_catalog.pg_opclass AS opc ON opc.oid = ix.indclass[k]
        WHERE ix.indkey[k] = a.attnum
        LIMIT 1) AS opclass,
       ix.indisvalid AS valid,
       (SELECT split_part(option, '=', 2)::integer
        FROM unnest(i.reloptions) AS option
        WHERE option LIKE 'lists=%') AS lists
FROM pg_catalog.pg_index AS ix
JOIN pg_catalog.pg_class AS i ON i.oid = ix.indexrelid
JOIN pg_catalog.pg_am AS am ON am.oid = i.relam
JOIN pg_catalog.pg_attribute AS a
    ON a.attrelid = ix.indrelid AND a.attname = 'embedding' AND a.attnum = ANY (ix.indkey)
WHERE ix.indrelid = to_regclass('public.pointers')
ORDER BY (am.amname = 'hnsw') DESC, i.relname;

-- name: pointers_count_embedded
-- How many rows an ivfflat index on pointers.embedding has to serve now.
SELECT count(*) FROM public.pointers WHERE embedding IS NOT NULL;
