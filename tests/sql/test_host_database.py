"""Drop-in on Maestro's own database: schemas built the way the host app builds its own.

Three situations: the production schema before any V3, the same after the host's own
revision v3_schema_001, and the local-development schema with varchar(36) ids. Each test
replays what a deployer does (docs/adopting-in-maestro.md) and checks the host keeps
working: projects get created, nothing is duplicated, downgrade leaves the host's objects.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import asyncpg
import psycopg
import pytest

from pgqueue_enricher.queue import statements
from pgqueue_enricher.schema import migrations
from tests.fakes.server import tiny_png
from tests.support.harness import settings_env, worker_settings
from tests.support.helpers import CROP
from tests.support.host_schema import (
    HOST_BASELINE,
    HOST_BASELINE_VARCHAR,
    HOST_V3,
    HOST_V3_INDEXES,
    build,
    duplicate_indexes,
)


def fetch(url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode(), params or None).fetchall()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgqueue_enricher", *args],
        env={**env, "LOG_FORMAT": "console"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )


def new_project_files(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        project = conn.execute(
            "INSERT INTO projects (user_id, name) VALUES ('u', 'Clinic') RETURNING id"
        ).fetchone()
        assert project is not None
        rows = conn.execute(
            "SELECT path FROM experience_files WHERE project_id = %s ORDER BY path", (project[0],)
        ).fetchall()
    return [row[0] for row in rows]


FIVE_FILES = ["corrections.md", "gaps.md", "preferences.md", "routing_rules.md", "schedule.md"]


def test_after_the_hosts_own_v3_migrate_adopts_its_objects_and_projects_still_get_their_files(
    empty_db_url: str,
) -> None:
    build(empty_db_url, HOST_BASELINE, HOST_V3)
    migrations.upgrade(empty_db_url)
    assert new_project_files(empty_db_url) == FIVE_FILES
    assert duplicate_indexes(empty_db_url) == []
    indexes = {
        row[0] for row in fetch(empty_db_url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    }
    assert HOST_V3_INDEXES <= indexes
    assert (
        not {"idx_experience_files_project_id", "idx_sessions_project_id", "idx_sessions_user_id"} & indexes
    )
    # The host's alembic_version is the host's: its chain still reads v3_schema_001.
    assert fetch(empty_db_url, "SELECT version_num FROM alembic_version") == [("v3_schema_001",)]

    migrations.downgrade(empty_db_url)
    after = {
        row[0] for row in fetch(empty_db_url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    }
    assert HOST_V3_INDEXES <= after, "downgrade never drops what the host created"
    tables = {
        row[0] for row in fetch(empty_db_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert {"experience_files", "sessions", "benchmark_logs", "conversations"} <= tables
    columns = {
        row[0]
        for row in fetch(
            empty_db_url,
            "SELECT attname FROM pg_attribute WHERE attrelid = 'pointers'::regclass AND attnum > 0 "
            "AND NOT attisdropped",
        )
    }
    assert {"enrichment_status", "cross_references", "enrichment_metadata"} <= columns
    assert "enrichment_attempts" not in columns


def test_a_database_migrated_by_the_old_0002_loses_its_duplicate_indexes_at_0005(empty_db_url: str) -> None:
    build(empty_db_url, HOST_BASELINE, HOST_V3)
    migrations.upgrade(empty_db_url, "0004")
    # What the first release's 0002 left beside the host's equivalents.
    build(
        empty_db_url,
        "CREATE INDEX idx_experience_files_project_id ON experience_files (project_id);"
        "CREATE INDEX idx_sessions_project_id ON sessions (project_id);"
        "CREATE INDEX idx_sessions_user_id ON sessions (user_id);",
    )
    assert len(duplicate_indexes(empty_db_url)) == 3
    migrations.upgrade(empty_db_url)
    assert duplicate_indexes(empty_db_url) == []
    assert new_project_files(empty_db_url) == FIVE_FILES


def test_before_any_v3_migrate_builds_v3_beside_the_renamed_sessions_table_and_the_stamp_keeps_the_host_booting(
    empty_db_url: str,
) -> None:
    build(empty_db_url, HOST_BASELINE)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO projects (id, user_id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'u', 'Old')"
        )
    migrations.upgrade(empty_db_url)
    assert new_project_files(empty_db_url) == FIVE_FILES
    # The host's chain would now fail its own v3_schema_001 at boot...
    with pytest.raises(psycopg.errors.DuplicateColumn):
        build(empty_db_url, HOST_V3)
    # ...so the documented one-time step stamps it, and `alembic upgrade head` has nothing to run.
    build(empty_db_url, "UPDATE alembic_version SET version_num = 'v3_schema_001'")
    assert fetch(empty_db_url, "SELECT version_num FROM alembic_version") == [("v3_schema_001",)]
    assert duplicate_indexes(empty_db_url) == []


def test_an_empty_description_with_an_embedding_is_pending_after_migrate(empty_db_url: str) -> None:
    build(empty_db_url, HOST_BASELINE)
    vector = "[" + ",".join(["0.1"] * 1024) + "]"
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        project = conn.execute(
            "INSERT INTO projects (user_id, name) VALUES ('u', 'p') RETURNING id"
        ).fetchone()
        discipline = conn.execute(
            "INSERT INTO disciplines (project_id, name, display_name) VALUES (%s, 'a', 'A') RETURNING id",
            (project[0],),
        ).fetchone()
        page = conn.execute(
            "INSERT INTO pages (discipline_id, page_name) VALUES (%s, 'A-101') RETURNING id", (discipline[0],)
        ).fetchone()
        for title, description in (("empty", ""), ("described", "A wall section."), ("fallback", "")):
            conn.execute(
                "INSERT INTO pointers (page_id, title, description, embedding) VALUES (%s, %s, %s, %s::vector)",
                (page[0], title, description, vector),
            )
    migrations.upgrade(empty_db_url)
    statuses = dict(fetch(empty_db_url, "SELECT title, enrichment_status FROM pointers"))
    assert statuses == {"empty": "pending", "described": "complete", "fallback": "pending"}


def test_varchar_ids_are_refused_with_exit_2_and_one_sentence_and_nothing_changes(empty_db_url: str) -> None:
    build(empty_db_url, HOST_BASELINE_VARCHAR)
    snapshot = """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = 'public' ORDER BY 1, 2
    """
    before = fetch(empty_db_url, snapshot)
    result = cli("migrate", env={"DATABASE_URL": empty_db_url, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2, result.stderr
    assert "projects.id is character varying(36)" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert fetch(empty_db_url, snapshot) == before


def test_a_failing_migration_step_is_one_sentence_with_the_revision_reached(empty_db_url: str) -> None:
    # A host object in the way of revision 0002: a view where experience_files should be.
    build(empty_db_url, HOST_BASELINE, "CREATE VIEW experience_files AS SELECT 1 AS project_id, '' AS path")
    result = cli("migrate", env={"DATABASE_URL": empty_db_url, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "rolled back" in result.stderr and "revision 0001" in result.stderr


async def test_a_processing_row_without_a_lease_is_rescued_and_completed_by_run_drain(
    empty_db_url: str,
    provider_settings,  # type: ignore[no-untyped-def]
    fake_server,  # type: ignore[no-untyped-def]
) -> None:
    build(empty_db_url, HOST_BASELINE, HOST_V3)
    migrations.upgrade(empty_db_url)
    fake_server.storage.put(CROP, tiny_png())
    conn = await asyncpg.connect(empty_db_url)
    try:
        project = await conn.fetchval("INSERT INTO projects (user_id, name) VALUES ('u', 'p') RETURNING id")
        discipline = await conn.fetchval(
            "INSERT INTO disciplines (project_id, name, display_name) VALUES ($1, 'a', 'A') RETURNING id",
            project,
        )
        page = await conn.fetchval(
            "INSERT INTO pages (discipline_id, page_name) VALUES ($1, 'A-101') RETURNING id", discipline
        )
        # The host's worker marked it processing, then its process died: no lease, no owner.
        await conn.execute(
            "INSERT INTO pointers (page_id, title, description, png_path, enrichment_status) "
            "VALUES ($1, 'left behind', 'Pending enrichment from re-ground.', $2, 'processing')",
            page,
            CROP,
        )
        report = await statements.status_report(conn)
        assert report["processing_without_lease"] == 1
        env = settings_env(
            worker_settings(provider_settings, empty_db_url, pass2_lease_seconds=1.0, pass2_poll_interval=0.5)
        )
        env["LOG_FORMAT"] = "json"
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "pgqueue_enricher", "run", "--drain"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        events = [json.loads(line)["event"] for line in result.stderr.splitlines() if line.startswith("{")]
        assert "pointer_lease_expired" in events and "pointer_complete" in events
        assert await conn.fetchval("SELECT enrichment_status FROM pointers") == "complete"
    finally:
        await conn.close()


async def test_an_unfenced_reset_by_another_tool_loses_our_write_and_the_row_is_claimed_again(
    db_url: str, conn: asyncpg.Connection
) -> None:
    from tests.support.helpers import insert_pointers, make_page

    _, page = await make_page(conn)
    (pointer_id,) = await insert_pointers(conn, page, 1)
    (claimed,) = await statements.claim(conn, 1, "ours", 300)
    # The host worker's start-up: every processing row back to pending, whoever holds it.
    await conn.execute(
        "UPDATE pointers SET enrichment_status = 'pending' WHERE enrichment_status = 'processing'"
    )
    fence = claimed.fence("ours")
    assert not await statements.complete(conn, fence, "late", [], [0.0] * 1024, {})
    (again,) = await statements.claim(conn, 1, "ours", 300)
    assert again.id == pointer_id and again.attempt == claimed.attempt + 1
    assert await statements.complete(conn, again.fence("ours"), "done", [], [0.0] * 1024, {})
    assert await conn.fetchval("SELECT enrichment_status FROM pointers") == "complete"


async def test_a_reground_pointer_keeps_the_hosts_metadata_and_its_instruction_reaches_gemini(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings,
    crops,
    watcher,  # type: ignore[no-untyped-def]
) -> None:
    from tests.support.harness import running_worker
    from tests.support.helpers import make_page

    _, page = await make_page(conn)
    instruction = "Pass 1 missed the parapet flashing detail; read its callouts."
    pointer = await conn.fetchval(
        "INSERT INTO pointers (page_id, title, description, png_path, enrichment_metadata) "
        "VALUES ($1, 'Flashing', 'Pending enrichment from re-ground.', $2, $3::jsonb) RETURNING id",
        page,
        CROP,
        json.dumps({"reground_instruction": instruction, "regrounded_at": "now"}),
    )
    async with running_worker(worker_settings(provider_settings, db_url, pass2_poll_interval=0.5)):
        assert await watcher.until_final(1, timeout=20) == {str(pointer): "complete"}
    request = crops.gemini.last
    assert request.parts == ["text", "text", "image", "text"]
    assert instruction in request.texts[1]
    meta = json.loads(await conn.fetchval("SELECT enrichment_metadata FROM pointers WHERE id = $1", pointer))
    assert meta["reground_instruction"] == instruction and meta["regrounded_at"] == "now"
    assert meta["stage"] == "complete" and "prompt_version" in meta
