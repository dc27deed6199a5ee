-- Helpers for adopting what a host app already created, applied by revisions 0002 and
-- 0005 before their own SQL. Frozen like every file in sql/migrations/: both revisions are
-- released, so a change here would rewrite them; a new helper goes in a new file.

-- name: upgrade
-- The name of a valid index on `target` (other than `except_name`) keyed on exactly
-- `columns` (in order) with this predicate (NULL: none), if there is one. Predicates are
-- compared with casts, parentheses and spaces removed, so `(status)::text = 'active'::text` on a varchar column matches
-- `status = 'active'` on a text one. Session-local: gone with the migration's connection.
CREATE OR REPLACE FUNCTION pg_temp.pgqe_equivalent_index(
    target regclass, columns text[], predicate text, must_be_unique boolean, except_name text DEFAULT NULL
) RETURNS text
LANGUAGE sql AS $$
    SELECT c.relname::text
    FROM pg_index AS i
    JOIN pg_class AS c ON c.oid = i.indexrelid
    WHERE i.indrelid = target AND i.indisvalid AND i.indexprs IS NULL
      AND c.relname IS DISTINCT FROM except_name
      AND (i.indisunique OR NOT must_be_unique)
      AND i.indnkeyatts = cardinality(columns)
      AND ARRAY(
          SELECT a.attname::text
          FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k (attnum, position)
          JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          WHERE k.position <= i.indnkeyatts
          ORDER BY k.position
      ) = columns
      AND regexp_replace(regexp_replace(coalesce(pg_get_expr(i.indpred, i.indrelid), ''),
                                        '::[a-z_ ]+', '', 'g'), '[()[:space:]]', '', 'g')
          = regexp_replace(regexp_replace(coalesce(predicate, ''), '::[a-z_ ]+', '', 'g'),
                           '[()[:space:]]', '', 'g')
    ORDER BY c.relname
    LIMIT 1
$$;

-- name: downgrade
SELECT 1;
