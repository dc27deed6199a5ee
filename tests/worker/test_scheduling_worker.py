"""Fair share, lanes and service tiers with the real worker, a real database and the fake
Gemini through the real SDK."""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import time
import uuid

import asyncpg
import pytest
import structlog

from pgqueue_enricher.queue import statements
from pgqueue_enricher.schema import migrations
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, run_cli, running_worker, spawn_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page


async def completions_until(watcher: RowWatcher, wanted: set[str], timeout: float) -> tuple[list[str], float]:
    """Pointer ids in the order they completed, until every id in `wanted` has; and when."""
    order: list[str] = []
    left = set(wanted)

    async def collect() -> None:
        while left:
            pointer_id, status = await watcher.changes.get()
            if status == "complete":
                order.append(pointer_id)
                left.discard(pointer_id)

    await asyncio.wait_for(collect(), timeout)
    return order, time.monotonic()


async def test_a_small_upload_completes_within_seconds_while_another_projects_backlog_drains(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    crops.gemini.latency = 0.3
    _, backlog_page = await make_page(conn)
    _, small_page = await make_page(conn)
    backlog = {str(p) for p in await insert_pointers(conn, backlog_page, 160, title_prefix="Backlog")}
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=4)
    async with running_worker(settings):
        await watcher.until_status("complete", 8, timeout=30)  # the backlog is draining
        inserted = time.monotonic()
        small = {str(p) for p in await insert_pointers(conn, small_page, 4, title_prefix="Small")}
        order, done = await completions_until(watcher, small, timeout=30)
        left = await conn.fetchval("SELECT count(*) FROM pointers WHERE enrichment_status = 'pending'")
    foreign = sum(1 for pointer_id in order if pointer_id in backlog)
    assert done - inserted <= 4.0, f"the small upload took {done - inserted:.1f}s"
    assert foreign <= 24, f"{foreign} backlog rows completed while the small upload waited"
    assert left > 100, "the backlog was still there: the small upload did not just wait for its end"


async def legacy_database(url: str, legacy: int) -> tuple[uuid.UUID, uuid.UUID]:
    """A database migrated to 0004 with `legacy` month-old pointers that have no embedding,
    then to head: the migration marks them pending in the backfill lane."""
    migrations.upgrade(url, "0004")
    conn = await asyncpg.connect(url)
    try:
        project, page = await make_page(conn)
        await conn.execute("ALTER TABLE pointers DISABLE TRIGGER pointers_doorbell_insert")
        await conn.execute(
            "INSERT INTO pointers (page_id, title, description, png_path, enrichment_status, created_at) "
            "SELECT $1, 'Legacy ' || g, 'Pass 1 text', 'crops/detail.png', 'pending', "
            "now() - interval '30 days' + g * interval '1 s' FROM generate_series(1, $2) g",
            page,
            legacy,
        )
        await conn.execute("ALTER TABLE pointers ENABLE TRIGGER pointers_doorbell_insert")
    finally:
        await conn.close()
    migrations.upgrade(url)
    return project, page


async def test_a_fresh_upload_goes_before_the_migrations_backfill_which_runs_on_flex(
    empty_db_url: str, provider_settings: Settings, crops: FakeServer
) -> None:
    _, page = await legacy_database(empty_db_url, 120)
    conn = await asyncpg.connect(empty_db_url)
    try:
        lanes = dict(await conn.fetch("SELECT enrichment_lane, count(*) FROM pointers GROUP BY 1"))
        assert lanes == {"backfill": 120}
        watcher = await RowWatcher(conn).install()
        crops.gemini.latency = 0.3
        settings = worker_settings(provider_settings, empty_db_url, pass2_max_concurrent=4)
        async with running_worker(settings):
            await watcher.until_status("complete", 4, timeout=30)
            inserted = time.monotonic()
            fresh = {str(p) for p in await insert_pointers(conn, page, 4, title_prefix="Fresh")}
            _, done = await completions_until(watcher, fresh, timeout=30)
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pointers WHERE enrichment_lane = 'backfill' AND enrichment_status = 'pending'"
            )
        assert done - inserted <= 4.0, f"the fresh upload took {done - inserted:.1f}s"
        assert waiting >= 100, f"only {waiting} backfill rows were still waiting"
        assert crops.gemini.tiers_for("Legacy").keys() == {"flex"}
        assert crops.gemini.tiers_for("Fresh") == {None: 4}, "standard: no serviceTier sent"
        meta = json.loads(
            await conn.fetchval(
                "SELECT enrichment_metadata FROM pointers WHERE title = 'Legacy 1' AND enrichment_status = 'complete'"
            )
        )
        fresh_meta = json.loads(
            await conn.fetchval("SELECT enrichment_metadata FROM pointers WHERE title = 'Fresh 1'")
        )
    finally:
        await conn.close()
    # The fake's usage: 1830 prompt (1024 cached) + 388 tool input, 412 output + 951 thinking.
    standard = (1830 - 1024 + 388) * 0.50 / 1e6 + 1024 * 0.05 / 1e6 + (412 + 951) * 3.00 / 1e6
    assert fresh_meta["service_tier"] == "standard"
    assert fresh_meta["estimated_cost_usd"] == pytest.approx(standard)
    assert meta["service_tier"] == "flex" and meta["estimated_cost_usd"] == pytest.approx(standard / 2)


async def test_a_flex_shed_is_a_wait_that_spends_no_attempt(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    _, page = await make_page(conn)
    [pointer] = await insert_pointers(conn, page, 1)
    assert await statements.requeue_to_lane(conn, "backfill", pointer_ids=[pointer]) == 1
    crops.gemini.flex_sheds = 2
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=0.2, pass2_max_attempts=2)
    async with running_worker(settings) as worker:
        assert await watcher.until_final(1, timeout=20) == {str(pointer): "complete"}
    row = await conn.fetchrow("SELECT enrichment_attempts, enrichment_error FROM pointers")
    # Two sheds and a success with PASS2_MAX_ATTEMPTS=2: a shed that spent an attempt would fail it.
    assert row["enrichment_attempts"] == 1
    assert crops.gemini.outcomes["flex_shed"] == 2 and crops.gemini.tiers_for("Detail") == {"flex": 3}
    assert worker.metrics.failures == {("transient", "flex_shed"): 2}


async def test_a_refused_tier_falls_back_to_standard_with_one_log_line_and_shows_in_status(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    _, page = await make_page(conn)
    ids = await insert_pointers(conn, page, 6)
    assert await statements.requeue_to_lane(conn, "backfill", pointer_ids=ids) == 6
    crops.gemini.refused_tiers = {"flex"}
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=1)
    with structlog.testing.capture_logs() as logs:
        async with running_worker(settings) as worker:
            done = await watcher.until_final(6, timeout=30)
    assert set(done.values()) == {"complete"}
    refusals = [event for event in logs if event["event"] == "service_tier_refused"]
    assert len(refusals) == 1 and refusals[0]["lane"] == "backfill", refusals
    assert crops.gemini.tiers_for("Detail") == {"flex": 1, None: 6}, "one refused call, then standard"
    attempts = await conn.fetch("SELECT DISTINCT enrichment_attempts FROM pointers")
    assert [row[0] for row in attempts] == [1], "the refusal cost no attempt"
    code, output = await run_cli(settings, "status", "--json")
    fallback = json.loads(output)["lanes"]["backfill"]["tier_fallback"]
    assert code == 0 and fallback["configured_tier"] == "flex" and fallback["effective_tier"] == "standard"
    assert fallback["worker_id"] == worker.worker_id and "service_tier" in fallback["reason"]
    metrics = worker.metrics.render(0)
    assert 'pgqe_gemini_tokens_total{kind="prompt_tokens",tier="standard"} 10980' in metrics
    code, text = await run_cli(settings, "status")
    assert "backfill: pending 0, processing 0; tier flex REFUSED by the API, using standard" in text


async def test_status_costs_sums_tokens_and_dollars_per_project_and_lane(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    project_a, page_a = await make_page(conn)
    project_b, page_b = await make_page(conn)
    await insert_pointers(conn, page_a, 3)
    backfill = await insert_pointers(conn, page_b, 2)
    await statements.requeue_to_lane(conn, "backfill", pointer_ids=backfill)
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=3)
    async with running_worker(settings):
        await watcher.until_final(5, timeout=30)
    code, output = await run_cli(settings, "status", "--costs", "--since", "24h", "--json")
    assert code == 0
    report = json.loads(output)
    entries = {(e["project_id"], e["lane"]): e for e in report["projects"]}
    assert set(entries) == {(str(project_a), "interactive"), (str(project_b), "backfill")}
    a, b = entries[(str(project_a), "interactive")], entries[(str(project_b), "backfill")]
    assert (a["pointers"], a["prompt_tokens"], a["cached_tokens"]) == (3, 3 * 1830, 3 * 1024)
    assert b["tiers"].keys() == {"flex"} and a["tiers"].keys() == {"standard"}
    assert b["estimated_cost_usd"] == pytest.approx(a["estimated_cost_usd"] / 3, rel=1e-4)
    assert report["total"]["pointers"] == 5
    code, output = await run_cli(settings, "status", "--costs", "--project", str(project_b))
    assert code == 0 and str(project_b) in output and str(project_a) not in output
    assert "backfill" in output and "flex 2" in output


@pytest.mark.slow
async def test_two_worker_processes_share_slots_fairly_across_three_projects(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    crops.gemini.latency = 0.1
    pages = [(await make_page(conn))[1] for _ in range(3)]
    owner: dict[str, str] = {}
    for pointer in await insert_pointers(conn, pages[0], 150, title_prefix="A"):
        owner[str(pointer)] = "A"
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=2, pass2_poll_interval=1.0)
    workers = [spawn_worker(settings, "--worker-id", f"fair-{n}") for n in range(2)]
    try:
        await watcher.until_status("complete", 10, timeout=60)
        for name, page in (("B", pages[1]), ("C", pages[2])):
            for pointer in await insert_pointers(conn, page, 60, title_prefix=name):
                owner[str(pointer)] = name
        order: list[str] = []
        counts: collections.Counter[str] = collections.Counter()
        # Count completions from now on, while all three projects still have work left.
        while all(counts[name] < 50 for name in "BC"):
            pointer_id, status = await asyncio.wait_for(watcher.changes.get(), 30)
            if status == "complete" and pointer_id in owner:
                order.append(pointer_id)
                counts[owner[pointer_id]] += 1
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        codes = [await asyncio.to_thread(p.wait, 30) for p in workers]
    assert codes == [0, 0]
    fair = len(order) / 3
    for name in "ABC":
        assert abs(counts[name] - fair) <= 0.25 * fair, f"{dict(counts)} of {len(order)}: not within 25 %"
    holders = await conn.fetch(
        "SELECT DISTINCT enrichment_metadata->>'worker_id' FROM pointers WHERE enrichment_status = 'complete'"
    )
    assert len(holders) == 2, "both processes took part"
