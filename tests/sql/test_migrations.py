"""The V3 schema as migrated on a real Postgres: fresh, live-host, repeated and reversed."""

from __future__ import annotations

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

from pgqueue_enricher.models import Base
from pgqueue_enricher.schema import migrations

V3_TABLES = {"projects", "disciplines", "pages", "pointers", "experience_files", "sessions"}


def fetch(url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def columns(url: str, table: str) -> dict[str, tuple[str, str, str | None, int | None]]:
    rows = fetch(
        url,
        """SELECT column_name, data_type, is_nullable, column_default, character_maximum_length
           FROM information_schema.columns WHERE table_name = %s""",
        table,
    )
    return {name: (dtype, nullable, default, length) for name, dtype, nullable, default, length in rows}


def indexes(url: str, table: str) -> dict[str, str]:
    return dict(fetch(url, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", table))


def test_pointers_gain_the_v3_and_queue_columns_with_their_types_and_defaults(db_url: str) -> None:
    cols = columns(db_url, "pointers")
    assert cols["enrichment_status"] == ("character varying", "NO", "'pending'::character varying", 20)
    assert cols["cross_references"][:2] == ("jsonb", "YES")
    assert cols["enrichment_metadata"][:2] == ("jsonb", "YES")
    assert cols["enrichment_attempts"][:3] == ("integer", "NO", "0")
    for name in ("enrichment_error", "enrichment_locked_by"):
        assert cols[name][:2] == ("text", "YES")
    for name in ("enrichment_locked_until", "enrichment_run_after"):
        assert cols[name][:2] == ("timestamp with time zone", "YES")
    assert fetch(
        db_url,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'pointers'::regclass AND attname = 'embedding'",
    ) == [("vector(1024)",)]
    idx = indexes(db_url, "pointers")
    assert "(enrichment_status)" in idx["idx_pointers_enrichment_status"]
    assert "WHERE ((enrichment_status)::text = 'pending'::text)" in idx["idx_pointers_enrichment_claim"]
    assert "(created_at, id)" in idx["idx_pointers_enrichment_claim"]
    assert "WHERE ((enrichment_status)::text = 'processing'::text)" in idx["idx_pointers_enrichment_lease"]


def test_the_database_rejects_an_unknown_enrichment_status(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO pointers (title, enrichment_status) VALUES ('x', 'done')")


def test_experience_files_table_matches_the_contract(db_url: str) -> None:
    cols = columns(db_url, "experience_files")
    assert cols["id"][:3] == ("uuid", "NO", "gen_random_uuid()")
    assert cols["project_id"][:2] == ("uuid", "NO")
    assert cols["path"][:2] == ("text", "NO")
    assert cols["content"][:3] == ("text", "NO", "''::text")
    assert cols["updated_by_session"][:2] == ("uuid", "YES")
    for name in ("created_at", "updated_at"):
        assert cols[name][:3] == ("timestamp with time zone", "NO", "now()")
    assert "UNIQUE INDEX experience_files_project_id_path_key" in " ".join(
        indexes(db_url, "experience_files").values()
    )
    assert "(project_id)" in indexes(db_url, "experience_files")["idx_experience_files_project_id"]
    fk = fetch(
        db_url,
        "SELECT confdeltype, confrelid::regclass::text FROM pg_constraint "
        "WHERE conrelid = 'experience_files'::regclass AND contype = 'f'",
    )
    assert fk == [("c", "projects")]


def test_sessions_table_matches_the_contract(db_url: str) -> None:
    cols = columns(db_url, "sessions")
    assert cols["user_id"][:2] == ("text", "NO")
    assert cols["session_type"][:2] == ("text", "NO")
    assert cols["workspace_id"][:2] == ("uuid", "YES")
    assert cols["workspace_name"][:2] == ("text", "YES")
    assert cols["maestro_messages"][:3] == ("jsonb", "NO", "'[]'::jsonb")
    assert cols["learning_messages"][:3] == ("jsonb", "NO", "'[]'::jsonb")
    assert cols["workspace_state"][1] == "YES"
    assert cols["status"][:3] == ("text", "NO", "'active'::text")
    for name in ("last_active_at", "created_at", "updated_at"):
        assert cols[name][:3] == ("timestamp with time zone", "NO", "now()")
    with psycopg.connect(db_url, autocommit=True) as conn:
        project = conn.execute(
            "INSERT INTO projects (user_id, name) VALUES ('u', 'p') RETURNING id"
        ).fetchone()[0]
        state = conn.execute(
            "INSERT INTO sessions (project_id, user_id, session_type) VALUES (%s, 'u', 'workspace') "
            "RETURNING workspace_state",
            (project,),
        ).fetchone()[0]
        assert state == {"displayed_pages": [], "highlighted_pointers": [], "pinned_pages": []}
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO sessions (project_id, user_id, session_type) VALUES (%s, 'u', 'sms')", (project,)
            )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO sessions (project_id, user_id, session_type, status) "
                "VALUES (%s, 'u', 'telegram', 'gone')",
                (project,),
            )
    idx = indexes(db_url, "sessions")
    assert "(project_id)" in idx["idx_sessions_project_id"]
    assert "(user_id)" in idx["idx_sessions_user_id"]
    assert "WHERE (status = 'active'::text)" in idx["idx_sessions_active"]


def test_backfill_marks_described_and_embedded_rows_complete_and_the_rest_pending(empty_db_url: str) -> None:
    migrations.upgrade(empty_db_url, "0001")
    vector = "[" + ",".join(["0.1"] * 1024) + "]"
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pointers (title, description, embedding) VALUES ('done', 'text', %s::vector)",
            (vector,),
        )
        conn.execute("INSERT INTO pointers (title, description) VALUES ('no embedding', 'text')")
        conn.execute("INSERT INTO pointers (title) VALUES ('fresh')")
    migrations.upgrade(empty_db_url)
    rows = dict(fetch(empty_db_url, "SELECT title, enrichment_status FROM pointers"))
    assert rows == {"done": "complete", "no embedding": "pending", "fresh": "pending"}


def test_a_live_database_with_some_v3_objects_migrates_and_keeps_its_statuses(empty_db_url: str) -> None:
    migrations.upgrade(empty_db_url, "0001")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        # The host app got there first: its own column, values and experience_files table.
        conn.execute(
            "ALTER TABLE pointers ADD COLUMN enrichment_status varchar(20) NOT NULL DEFAULT 'pending'"
        )
        conn.execute("ALTER TABLE pointers ADD COLUMN cross_references jsonb")
        conn.execute(
            "INSERT INTO pointers (title, description, enrichment_status) VALUES ('host', 'x', 'failed')"
        )
        conn.execute(
            "CREATE TABLE experience_files (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
            "project_id uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE, path text NOT NULL, "
            "content text NOT NULL DEFAULT '', updated_by_session uuid, "
            "created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(), "
            "CONSTRAINT experience_files_project_id_path_key UNIQUE (project_id, path))"
        )
    migrations.upgrade(empty_db_url)
    assert fetch(empty_db_url, "SELECT enrichment_status FROM pointers") == [("failed",)]
    assert migrations.current_revision(empty_db_url) == migrations.head_revision()
    # Downgrade removes only what this project added: the host's column and table stay.
    migrations.downgrade(empty_db_url)
    remaining = columns(empty_db_url, "pointers")
    assert "enrichment_status" in remaining and "cross_references" in remaining
    assert "enrichment_metadata" not in remaining and "enrichment_attempts" not in remaining
    assert fetch(empty_db_url, "SELECT to_regclass('experience_files')::text") == [("experience_files",)]


def schema_snapshot(url: str) -> list[tuple]:
    return (
        fetch(
            url,
            """SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           WHERE n.nspname = 'public' ORDER BY 1, 3""",
        )
        + fetch(url, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1")
        + fetch(
            url,
            "SELECT proname, md5(prosrc) FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1",
        )
    )


def test_a_second_migrate_changes_nothing(db_url: str) -> None:
    before = schema_snapshot(db_url)
    migrations.upgrade(db_url)
    assert schema_snapshot(db_url) == before
    assert migrations.current_revision(db_url) == migrations.head_revision()


def test_downgrade_to_base_keeps_the_baseline_tables_and_upgrade_restores_everything(db_url: str) -> None:
    migrated = schema_snapshot(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO projects (user_id, name) VALUES ('u', 'kept')")
    migrations.downgrade(db_url, "base")
    tables = {row[0] for row in fetch(db_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"projects", "disciplines", "pages", "pointers"} <= tables
    assert not tables & {"experience_files", "sessions"}
    assert fetch(db_url, "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal") == [(0,)]
    assert fetch(db_url, "SELECT name FROM projects") == [("kept",)]
    assert "enrichment_status" not in columns(db_url, "pointers")
    migrations.upgrade(db_url)
    assert schema_snapshot(db_url) == migrated


def test_the_host_apps_alembic_version_table_is_never_touched(db_url: str) -> None:
    tables = {row[0] for row in fetch(db_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert migrations.VERSION_TABLE in tables
    assert "alembic_version" not in tables


def test_models_and_migrated_schema_agree(db_url: str) -> None:
    engine = create_engine(migrations.sqlalchemy_url(db_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, type_, parent: type_ != "table" or name in V3_TABLES,
                },
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_migrate_sql_prints_the_migration_without_connecting() -> None:
    sql = migrations.upgrade_sql()
    assert "CREATE TABLE IF NOT EXISTS pointers" in sql
    assert "pgqueue_enricher_alembic_version" in sql
    assert "CREATE OR REPLACE FUNCTION requeue_failed_pointers" in sql
