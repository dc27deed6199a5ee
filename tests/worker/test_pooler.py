"""The daemon and the CLI through a real transaction pooler (PgBouncer, as Supabase's port 6543)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import asyncpg
import structlog.testing
from pydantic import SecretStr

from pgqueue_enricher.ops import health
from pgqueue_enricher.ops.registry import HEARTBEATS_TO_EXPIRE, heartbeat_interval
from pgqueue_enricher.queue import statements
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, run_cli, running_worker, spawn_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page
from tests.support.pooler import PgBouncer


async def test_migrate_run_status_and_requeue_work_through_a_transaction_pooler(
    empty_db_url: str, provider_settings: Settings, crops: FakeServer, pooler: PgBouncer
) -> None:
    through = pooler.url(empty_db_url)
    # The listener needs a session of its own: a direct connection, as the README says.
    settings = worker_settings(
        provider_settings,
        through,
        database_listen_url=SecretStr(empty_db_url),
        pass2_poll_interval=0.5,
        pass2_max_attempts=1,
    )
    code, output = await run_cli(settings, "migrate")
    assert code == 0 and "migrated: base ->" in output, output
    conn = await asyncpg.connect(empty_db_url)
    try:
        watcher = await RowWatcher(conn).install()
        _, page = await make_page(conn)
        crops.gemini.script(["500"])  # one pointer fails on its only attempt (a 401 would pause Gemini)
        pointers = await insert_pointers(conn, page, 6)
        async with running_worker(settings, worker_id="pooled-worker") as worker:
            final = await watcher.until_final(6, timeout=30)
            assert sorted(final.values()) == ["complete"] * 5 + ["failed"]
            code, output = await run_cli(settings, "status", "--json")
            assert code == 0, output
            report = json.loads(output)
            assert report["counts"] == {"pending": 0, "processing": 0, "complete": 5, "failed": 1}
            assert [w["worker_id"] for w in report["workers"]] == ["pooled-worker"]
            code, output = await run_cli(settings, "requeue", "--all-failed")
            assert (code, output.strip().splitlines()[-1]) == (0, "requeued 1"), output
            assert set((await watcher.until_final(1, timeout=30)).values()) == {"complete"}
        assert worker.metrics.completions == 6
        statuses = {row[0] for row in await conn.fetch("SELECT enrichment_status FROM pointers")}
        assert statuses == {"complete"} and len(pointers) == 6
    finally:
        await conn.close()
    code, output = await run_cli(settings, "migrate")
    assert code == 0 and "nothing to do" in output, output


OUTAGE_SECONDS = 12.0


async def test_a_12_s_pooler_outage_mid_run_loses_no_finished_work_and_pays_gemini_once_per_pointer(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, pooler: PgBouncer
) -> None:
    watcher = await RowWatcher(conn).install()  # a direct connection: it hears through the outage
    settings = worker_settings(
        provider_settings,
        pooler.url(db_url),
        database_listen_url=SecretStr(db_url),
        pass2_max_concurrent=3,
        pass2_lease_seconds=30.0,  # longer than the outage: nothing may be enriched twice
        pass2_poll_interval=0.5,
    )
    _, page = await make_page(conn)
    pointers = await insert_pointers(conn, page, 6)
    gate = crops.gemini.hold()
    async with running_worker(settings, worker_id="outage-worker") as worker:
        await gate.arrivals(3)
        pooler.kill()
        # The three answers arrive while the pooler is gone: their checkpoints must be held.
        gate.release()
        await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, not a synchronisation
        assert await conn.fetchval("SELECT count(*) FROM pointers WHERE enrichment_status = 'complete'") == 0
        pooler.start()
        final = await watcher.until_final(6, timeout=60)
    assert set(final.values()) == {"complete"} and len(final) == len(pointers)
    titles = [f"Detail {n}" for n in range(1, 7)]
    assert {title: crops.gemini.ok_by_title[title] for title in titles} == dict.fromkeys(titles, 1)
    assert crops.gemini.calls == 6, crops.gemini.stats()
    attempts = [row[0] for row in await conn.fetch("SELECT enrichment_attempts FROM pointers")]
    assert attempts == [1] * 6, "no row was claimed a second time"
    assert worker.metrics.completions == 6 and worker.metrics.rescued == 0


async def test_listen_through_a_transaction_pooler_is_reported_degraded_with_the_fix_and_polling_goes_on(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, pooler: PgBouncer
) -> None:
    watcher = await RowWatcher(conn).install()
    # The user's mistake: DATABASE_URL on the transaction pooler and no DATABASE_LISTEN_URL.
    settings = worker_settings(provider_settings, pooler.url(db_url), pass2_poll_interval=0.5)
    _, page = await make_page(conn)
    with structlog.testing.capture_logs() as logs:
        async with running_worker(settings) as worker:
            await asyncio.wait_for(worker.listener.degraded.wait(), 30)
            assert worker.listener.state == "degraded" and not worker.listener.ready.is_set()
            assert "pgqe_listener_healthy 0" in worker.metrics.render(0)
            assert "pgqe_listener_degraded 1" in worker.metrics.render(0)
            verdict = await health.check(worker)
            assert not verdict.healthy and any(p.startswith("listener: degraded") for p in verdict.problems)
            await worker.registry.beat()
            [row] = (await pooled_status(pooler.url(db_url)))["workers"]
            assert row["listener_state"] == "degraded"
            await insert_pointers(conn, page, 2)
            assert set((await watcher.until_final(2, timeout=15)).values()) == {"complete"}
    degraded = [entry for entry in logs if entry["event"] == "listener_degraded"]
    assert len(degraded) == 1, degraded
    assert "DATABASE_LISTEN_URL" in degraded[0]["reason"] and "session" in degraded[0]["reason"]
    assert not [entry for entry in logs if entry["event"] == "listener_ready"]


async def test_listen_on_a_direct_connection_beside_a_pooled_database_url_is_ready(
    db_url: str, provider_settings: Settings, crops: FakeServer, pooler: PgBouncer
) -> None:
    settings = worker_settings(
        provider_settings, pooler.url(db_url), database_listen_url=SecretStr(db_url), pass2_poll_interval=0.5
    )
    async with running_worker(settings) as worker:
        await asyncio.wait_for(worker.listener.ready.wait(), 15)
        assert worker.listener.state == "ready" and not worker.listener.degraded.is_set()


async def pooled_status(pooled_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(pooled_url, statement_cache_size=0)
    try:
        return await statements.status_report(conn)
    finally:
        await conn.close()


async def live_ids(pooled_url: str) -> set[str]:
    return {worker["worker_id"] for worker in (await pooled_status(pooled_url))["workers"]}


async def until_live(pooled_url: str, expected: set[str], timeout: float) -> float:
    """Seconds until the registry, read through the pooler, lists exactly `expected`."""
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        while await live_ids(pooled_url) != expected:  # noqa: ASYNC110 - a row's absence has no event
            await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_status_through_the_pooler_lists_live_workers_and_drops_a_stopped_or_killed_one(
    db_url: str, provider_settings: Settings, crops: FakeServer, pooler: PgBouncer
) -> None:
    lease = 3.0  # one heartbeat a second
    interval = heartbeat_interval(lease)
    settings = worker_settings(provider_settings, pooler.url(db_url), pass2_lease_seconds=lease)
    pooled = pooler.url(db_url)
    processes = {name: spawn_worker(settings, "--worker-id", name) for name in ("kept", "killed", "stopped")}
    try:
        await until_live(pooled, set(processes), timeout=60)
        code, output = await run_cli(settings, "status", "--json")
        assert code == 0, output
        workers = {w["worker_id"]: w for w in json.loads(output)["workers"]}
        assert set(workers) == set(processes)
        assert workers["kept"]["pid"] == processes["kept"].pid and workers["kept"]["in_flight"] == 0
        assert workers["kept"]["listener_state"] in ("starting", "ready", "degraded")

        processes["stopped"].send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(processes["stopped"].wait, 30) == 0
        # A clean stop removes its row at once.
        assert await live_ids(pooled) == {"kept", "killed"}

        processes["killed"].kill()
        await asyncio.to_thread(processes["killed"].wait, 30)
        gone_after = await until_live(pooled, {"kept"}, timeout=30)
        assert gone_after <= HEARTBEATS_TO_EXPIRE * interval + 1.0, gone_after
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)
