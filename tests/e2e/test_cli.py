"""The `pgqueue-enricher` command as an operator uses it: real processes, real database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import asyncpg
import pytest

from pgqueue_enricher.schema import migrations
from tests.support.helpers import insert_pointers, make_page


def cli(
    *args: str, env: dict[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "pgqueue_enricher", *args],
        env={**base, "LOG_FORMAT": "console", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",  # no .env from the repository
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_migrate_upgrades_an_empty_database_and_a_second_run_is_a_no_op(empty_db_url: str) -> None:
    first = cli("migrate", env={"DATABASE_URL": empty_db_url}, check=True)
    assert f"base -> {migrations.head_revision()}" in first.stdout
    second = cli("migrate", env={"DATABASE_URL": empty_db_url}, check=True)
    assert "nothing to do" in second.stdout


def test_migrate_sql_prints_and_touches_nothing(empty_db_url: str) -> None:
    result = cli("migrate", "--sql", env={"DATABASE_URL": empty_db_url}, check=True)
    assert "CREATE TABLE IF NOT EXISTS pointers" in result.stdout
    assert migrations.current_revision(empty_db_url) is None


@pytest.mark.parametrize(
    ("args", "env", "variable"),
    [
        (["status"], {}, "DATABASE_URL"),
        (["run"], {"DATABASE_URL": "postgresql://x@127.0.0.1:9/x"}, "GEMINI_API_KEY"),
        (["run"], {"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        (
            ["status"],
            {"DATABASE_URL": "postgresql://x@h/x", "PASS2_MAX_CONCURRENT": "many"},
            "PASS2_MAX_CONCURRENT",
        ),
        (
            ["status"],
            {"DATABASE_URL": "postgresql://x@h/x", "PASS2_THINKING_LEVEL": "extreme"},
            "PASS2_THINKING_LEVEL",
        ),
        (
            ["run"],
            {"DATABASE_URL": "postgresql://x@h/x", "ENRICHER_PROVIDER": "local"},
            "SUPABASE_URL",
        ),
    ],
)
def test_configuration_errors_exit_2_and_name_the_variable(
    args: list[str], env: dict[str, str], variable: str
) -> None:
    result = cli(*args, env=env)
    assert result.returncode == 2, result.stderr
    assert variable in result.stderr


async def test_status_json_reports_counts_retries_reasons_and_completions(
    db_url: str, conn: asyncpg.Connection
) -> None:
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 3)
    failed = await insert_pointers(conn, page, 2, status="failed")
    await conn.execute("UPDATE pointers SET enrichment_error = 'crop not found' WHERE id = ANY($1)", failed)
    await insert_pointers(conn, page, 1, status="complete")
    await conn.execute(
        "UPDATE pointers SET enrichment_metadata = '{\"enriched_at\": \"now\"}' WHERE enrichment_status = 'complete'"
    )
    await conn.execute(
        "UPDATE pointers SET enrichment_run_after = now() + interval '1 hour' WHERE id = "
        "(SELECT id FROM pointers WHERE enrichment_status = 'pending' LIMIT 1)"
    )
    result = cli("status", "--json", env={"DATABASE_URL": db_url}, check=True)
    report = json.loads(result.stdout)
    assert report["counts"] == {"pending": 3, "processing": 0, "complete": 1, "failed": 2}
    assert report["retrying"] == 1
    assert report["oldest_pending_age_s"] >= 0
    assert report["failure_reasons"] == [{"reason": "crop not found", "count": 2}]
    assert report["completed_last_hour"] == 1
    assert report["workers"] == []
    text = cli("status", env={"DATABASE_URL": db_url}, check=True).stdout
    assert "failed 2" in text and "crop not found" in text


async def test_requeue_needs_a_filter_and_prints_the_count(db_url: str, conn: asyncpg.Connection) -> None:
    project, page = await make_page(conn)
    failed = await insert_pointers(conn, page, 3, status="failed")
    await conn.execute("UPDATE pointers SET enrichment_error = 'Gemini 429' WHERE id = $1", failed[0])
    env = {"DATABASE_URL": db_url}
    refused = cli("requeue", env=env)
    assert refused.returncode == 2 and "--all-failed" in refused.stderr
    assert cli("requeue", "--error-like", "%429%", env=env, check=True).stdout.strip() == "requeued 1"
    assert cli("requeue", "--pointer", str(failed[1]), env=env, check=True).stdout.strip() == "requeued 1"
    assert cli("requeue", "--project", str(project), env=env, check=True).stdout.strip() == "requeued 1"
    assert cli("requeue", "--all-failed", env=env, check=True).stdout.strip() == "requeued 0"
    bad = cli("requeue", "--pointer", "not-a-uuid", env=env)
    assert bad.returncode == 2 and "not a UUID" in bad.stderr


async def test_run_drain_exits_0_once_the_queue_is_empty(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings,
    fake_server,  # type: ignore[no-untyped-def]
) -> None:
    from tests.fakes.server import tiny_png
    from tests.support.harness import settings_env, worker_settings

    fake_server.storage.put("crops/detail.png", tiny_png())
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 5)
    env = settings_env(worker_settings(provider_settings, db_url, pass2_poll_interval=0.5, log_format="json"))
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pgqueue_enricher", "run", "--drain", "--concurrency", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert await conn.fetchval("SELECT count(*) FROM pointers WHERE enrichment_status = 'complete'") == 5
    events = [json.loads(line)["event"] for line in result.stderr.splitlines() if line.startswith("{")]
    assert events.count("pointer_claimed") == 5 and events.count("pointer_complete") == 5
    assert "drained" in events


def test_status_on_an_unmigrated_database_says_to_migrate(empty_db_url: str) -> None:
    result = cli("status", env={"DATABASE_URL": empty_db_url})
    assert result.returncode == 1
    assert "pgqueue-enricher migrate" in result.stderr and "Traceback" not in result.stderr


async def test_status_lists_registered_workers_with_their_leases_and_not_an_expired_one(
    db_url: str, conn: asyncpg.Connection
) -> None:
    from pgqueue_enricher.ops.registry import Registry, Report
    from pgqueue_enricher.queue import statements

    async def db(operation, *args, attempts=1):  # the worker's db(), on one connection
        return await operation(conn, *args)

    long_id = "worker-" + "x" * 70  # longer than an application_name may be
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 2)
    await statements.claim(conn, 2, long_id, 60)
    for worker_id, interval in ((long_id, 10.0), ("idle-one", 10.0), ("crashed-one", 0.01)):
        await Registry(worker_id, interval, lambda: Report(0, "ready", None), db).beat()
    await conn.execute(
        "UPDATE pgqueue_enricher_workers SET heartbeat_at = now() - interval '1 s', "
        "expires_at = now() - interval '1 ms' WHERE worker_id = 'crashed-one'"
    )
    report = await statements.status_report(conn)
    assert [{k: w[k] for k in ("worker_id", "in_flight", "listener_state")} for w in report["workers"]] == [
        {"worker_id": "idle-one", "in_flight": 0, "listener_state": "ready"},
        {"worker_id": long_id, "in_flight": 2, "listener_state": "ready"},
    ]
    assert report["workers"][0]["pid"] == os.getpid() and report["workers"][0]["version"]
