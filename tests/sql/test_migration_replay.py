"""Released revisions are immutable: replaying the chain gives what the living SQL files say.

A database upgraded from base is compared with the same database whose functions and
triggers were dropped and rebuilt from the living files alone (sql/definitions/, in the
order of migrations.LIVING_SQL_FILES). A living file edited without a new revision, or a
revision whose frozen copy differs from the living file, fails here.
"""

from __future__ import annotations

import psycopg

from pgqueue_enricher.schema import migrations
from pgqueue_enricher.schema.sqlfiles import blocks

# Functions and triggers of the project's own: pgvector's functions belong to the extension.
OWN_FUNCTIONS = """
SELECT p.oid::regprocedure::text AS signature, pg_get_functiondef(p.oid) AS definition,
       coalesce(p.proacl::text, '') AS grants
FROM pg_proc AS p
JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1
"""
OWN_TRIGGERS = """
SELECT t.tgrelid::regclass::text AS table_name, t.tgname AS name, pg_get_triggerdef(t.oid) AS definition
FROM pg_trigger AS t
WHERE NOT t.tgisinternal
ORDER BY 1, 2
"""


def snapshot(conn: psycopg.Connection) -> tuple[list[tuple], list[tuple]]:
    return conn.execute(OWN_FUNCTIONS).fetchall(), conn.execute(OWN_TRIGGERS).fetchall()


def rebuilt_from_living_files(conn: psycopg.Connection) -> tuple[list[tuple], list[tuple]]:
    """Inside the caller's transaction: drop every own function (and so its triggers), apply the living files."""
    for (signature,) in conn.execute(
        "SELECT signature FROM (" + OWN_FUNCTIONS + ") AS own"  # noqa: S608 (a constant)
    ).fetchall():
        conn.execute(f"DROP FUNCTION IF EXISTS {signature} CASCADE")
    with conn.cursor() as cursor:
        for living in migrations.LIVING_SQL_FILES:
            # Raw text, no parameters: `%` in the SQL must reach Postgres untouched.
            cursor.execute(blocks(living)["upgrade"].encode())
    return snapshot(conn)


def test_the_migration_chain_and_the_living_sql_files_define_the_same_functions_and_triggers(
    empty_db_url: str,
) -> None:
    migrations.upgrade(empty_db_url)
    with psycopg.connect(empty_db_url) as conn:
        functions, triggers = snapshot(conn)
        assert functions and triggers, "the chain installs functions and triggers"
        living_functions, living_triggers = rebuilt_from_living_files(conn)
        conn.rollback()
    assert [f[0] for f in living_functions] == [f[0] for f in functions]
    for replayed, living in zip(functions, living_functions, strict=True):
        assert replayed == living, f"{replayed[0]} differs between the migrations and the living files"
    assert living_triggers == triggers


def test_a_living_file_that_drifts_from_the_chain_is_caught(empty_db_url: str) -> None:
    """The comparison above can fail: a changed function body shows up as a difference."""
    migrations.upgrade(empty_db_url)
    with psycopg.connect(empty_db_url) as conn:
        before, _ = snapshot(conn)
        conn.execute(
            "CREATE OR REPLACE FUNCTION pointers_ring_doorbell_on_insert() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$"
        )
        drifted, _ = snapshot(conn)
        conn.rollback()
    assert before != drifted


def test_downgrading_0003_keeps_a_bookkeeping_column_another_tool_made_first(empty_db_url: str) -> None:
    migrations.upgrade(empty_db_url, "0002")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE pointers ADD COLUMN enrichment_error text")
    migrations.upgrade(empty_db_url, "0003")
    migrations.downgrade(empty_db_url, "0002")
    with psycopg.connect(empty_db_url) as conn:
        columns = {
            row[0]
            for row in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'pointers'::regclass "
                "AND attnum > 0 AND NOT attisdropped"
            )
        }
        indexes = {
            row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'pointers'")
        }
    assert "enrichment_error" in columns
    assert not {"enrichment_attempts", "enrichment_locked_by", "enrichment_locked_until"} & columns
    assert not {"idx_pointers_enrichment_claim", "idx_pointers_enrichment_lease"} & indexes
