"""`pgqueue-enricher run` as real processes: several workers, SIGTERM, SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import pytest

from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, spawn_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page


async def wait_exit(process, timeout: float) -> int:  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(process.wait, timeout)


@pytest.mark.slow
async def test_three_worker_processes_enrich_300_pointers_with_exactly_one_gemini_call_each(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    crops.gemini.latency = 0.01
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 300, title_prefix="Region")
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=4, pass2_poll_interval=1.0)
    workers = [spawn_worker(settings, "--worker-id", f"proc-{n}") for n in range(3)]
    try:
        done = await watcher.until_final(300, timeout=120)
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        codes = [await wait_exit(p, 30) for p in workers]
    assert codes == [0, 0, 0]
    assert set(done.values()) == {"complete"}
    calls = crops.gemini.by_title
    assert len(calls) == 300 and set(calls.values()) == {1}, (
        "every pointer enriched by exactly one Gemini call"
    )
    holders = await conn.fetch(
        "SELECT enrichment_metadata->>'worker_id' AS w, count(*) FROM pointers GROUP BY 1 ORDER BY 1"
    )
    assert len(holders) == 3, f"work should be shared by all three processes: {holders}"


@pytest.mark.slow
async def test_sigterm_finishes_in_flight_work_within_the_grace_and_gives_back_the_rest(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 6)
    gate = crops.gemini.hold()
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=2, pass2_shutdown_grace=2.0)
    process = spawn_worker(settings, "--worker-id", "graceful")
    try:
        await gate.arrivals(2, timeout=30)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = await wait_exit(process, 20)
        elapsed = time.monotonic() - started
    finally:
        gate.release()
        if process.poll() is None:
            process.kill()
    assert code == 0
    assert elapsed < 2.0 + 3.0, f"took {elapsed:.1f}s for a 2 s grace period"
    rows = await conn.fetch(
        "SELECT enrichment_status, enrichment_attempts, enrichment_locked_by FROM pointers"
    )
    assert {tuple(r) for r in rows} == {("pending", 0, None)}, (
        "unfinished rows are pending with attempts given back"
    )


@pytest.mark.slow
async def test_a_killed_worker_s_rows_are_rescued_and_completed_by_another(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    _, page = await make_page(conn)
    pointers = await insert_pointers(conn, page, 8)
    gate = crops.gemini.hold()
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=3, pass2_lease_seconds=2.0)
    victim = spawn_worker(settings, "--worker-id", "victim")
    try:
        await gate.arrivals(3, timeout=30)
        victim.send_signal(signal.SIGKILL)
        assert await wait_exit(victim, 10) == -signal.SIGKILL
    finally:
        gate.release()
    held = await conn.fetchval("SELECT count(*) FROM pointers WHERE enrichment_locked_by = 'victim'")
    assert held == 3
    rescuer = spawn_worker(settings, "--worker-id", "rescuer")
    try:
        done = await watcher.until_final(8, timeout=60)
    finally:
        rescuer.send_signal(signal.SIGTERM)
        assert await wait_exit(rescuer, 30) == 0
    assert set(done) == {str(p) for p in pointers} and set(done.values()) == {"complete"}
    assert await conn.fetchval("SELECT count(*) FROM pointers WHERE enrichment_status = 'processing'") == 0
    attempts = dict(await conn.fetch("SELECT enrichment_attempts, count(*) FROM pointers GROUP BY 1"))
    assert attempts == {2: 3, 1: 5}, "the three killed rows spent one attempt each"
