"""The daemon on a real database with the fake providers: wake-ups, slots, retries, leases."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr

from pgqueue_enricher.demo import rows
from pgqueue_enricher.ops.metrics import serve_metrics
from pgqueue_enricher.queue.worker import Worker
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, run_cli, running_worker, worker_settings
from tests.support.helpers import CROP, insert_pointers, make_page


async def test_an_inserted_pointer_completes_within_a_second_through_the_notify_path(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=30.0)
    _, page = await make_page(conn)
    async with running_worker(settings) as worker:
        await worker_ready(worker)
        started = time.monotonic()
        [pointer] = await insert_pointers(conn, page, 1)
        assert await watcher.until_final(1, timeout=10) == {str(pointer): "complete"}
        elapsed = time.monotonic() - started
    assert elapsed < 1.0, (
        f"took {elapsed:.2f}s with a 30 s poll interval: the doorbell did not wake the worker"
    )
    row = await conn.fetchrow("SELECT * FROM pointers WHERE id = $1", pointer)
    assert "## Description" in row["description"] and "Let me zoom" not in row["description"]
    assert "| Mark | Material | Thickness |" in row["description"]
    assert json.loads(row["cross_references"]) == ["S-101", "Detail 4/A3.01", "09 21 16"]
    assert row["embedding"] is not None
    meta = json.loads(row["enrichment_metadata"])
    assert meta["stage"] == "complete" and meta["usage"]["prompt_tokens"] == 1830
    assert meta["embedding_dimensions"] == 1024 and meta["worker_id"] == worker.worker_id
    assert crops.gemini.calls == 1


async def test_with_the_doorbell_disabled_polling_alone_completes_a_pointer_within_three_seconds(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    await conn.execute("ALTER TABLE pointers DISABLE TRIGGER pointers_doorbell_insert")
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=1.0)
    _, page = await make_page(conn)
    async with running_worker(settings) as worker:
        await worker_ready(worker)
        started = time.monotonic()
        await insert_pointers(conn, page, 1)
        await watcher.until_final(1, timeout=10)
        elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"took {elapsed:.2f}s with a 1 s poll interval"


async def worker_ready(worker: Worker) -> None:
    """Wait until the worker's listener proved its LISTEN works (its round trip came back)."""
    await asyncio.wait_for(worker.listener.ready.wait(), 10)


async def test_one_slow_pointer_does_not_hold_back_the_others_and_slots_stay_full(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=3)
    _, page = await make_page(conn)
    crops.gemini.latency = 0.05
    crops.gemini.slow_titles["Slow 1"] = 30.0
    [slow] = await insert_pointers(conn, page, 1, title_prefix="Slow")
    fast = await insert_pointers(conn, page, 20, title_prefix="Fast")
    async with running_worker(settings) as worker:
        done = await watcher.until_final(20, timeout=20)
        assert set(done) == {str(p) for p in fast}
        assert (
            await conn.fetchval("SELECT enrichment_status FROM pointers WHERE id = $1", slow) == "processing"
        )
        crops.gemini.slow_titles.clear()
        crops.reset_wake()
        await watcher.until_final(1, timeout=10)
    # Counted once the worker has stopped: a task counts its completion only after the
    # write-back returns, which can be after the watcher saw the row change.
    assert worker.metrics.completions == 21
    assert crops.gemini.max_in_flight == 3, "with a backlog, every slot should be busy, and never more"


async def test_freed_slots_claim_side_by_side_and_never_hold_more_rows_than_slots(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    # Each freed slot claims its own next row (Worker._refill), beside the others: the rows
    # this worker holds in `processing`, in commit order, must never exceed its slots.
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=3)
    _, page = await make_page(conn)
    crops.gemini.latency = 0.01
    await insert_pointers(conn, page, 60)
    holding, most, complete = 0, 0, 0
    async with running_worker(settings) as worker:

        async def follow() -> None:
            nonlocal holding, most, complete
            while complete < 60:
                _, status = await watcher.changes.get()
                holding += {"processing": 1, "complete": -1}.get(status, 0)
                complete += status == "complete"
                most = max(most, holding)

        await asyncio.wait_for(follow(), 30)
    assert most == 3, f"{most} rows held at once by a worker with 3 slots"
    assert worker.metrics.claims == 60


async def test_a_draining_worker_woken_while_every_slot_is_busy_does_not_count_the_queue_each_time(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    monkeypatch: Any,
) -> None:
    # Drain mode asks "is anything left?" after a claim that found nothing. A wake-up while
    # every slot is busy claims nothing because there is no slot, not because the queue is
    # empty: counting then scanned the queue on every such turn (many a second at
    # concurrency 32, bench/throughput.py). Only the progress count, every PROGRESS_INTERVAL, is left.
    from pgqueue_enricher.queue import statements

    counted = 0
    count_unfinished = statements.count_unfinished

    async def counting(*args: Any) -> Any:
        nonlocal counted
        counted += 1
        return await count_unfinished(*args)

    monkeypatch.setattr(statements, "count_unfinished", counting)
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=2)
    _, page = await make_page(conn)
    crops.gemini.latency = 1.5  # both slots stay busy while the loop is woken
    await insert_pointers(conn, page, 2)
    async with running_worker(settings, drain=True) as worker:
        await watcher.until_status("processing", 2, timeout=10)
        turned, turn = asyncio.Event(), worker.loop_watch.turned

        def note_turn() -> None:
            turn()
            turned.set()

        worker.loop_watch.turned = note_turn  # type: ignore[method-assign]
        before, started = counted, time.monotonic()
        for _ in range(40):
            turned.clear()
            worker.doorbell.set()
            await asyncio.wait_for(turned.wait(), 5)
        elapsed = time.monotonic() - started
        assert len(worker.in_flight) == 2, "the slots were busy throughout"
        assert counted - before <= elapsed / 0.5 + 1, f"{counted - before} counts in 40 wake-ups"
        assert set((await watcher.until_final(2, timeout=10)).values()) == {"complete"}


async def test_at_low_load_a_finished_pointer_sends_no_empty_claim_after_one_found_the_queue_empty(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    # One insert at a time, each after the last one completed: the insert's NOTIFY claims it,
    # and its slot, freed, has nothing to claim (that claim had found the queue empty). An
    # empty claim after each pointer held the claim slots just when the next NOTIFY came.
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=2, pass2_poll_interval=30.0)
    _, page = await make_page(conn)
    async with running_worker(settings) as worker:
        await asyncio.wait_for(worker.listener.ready.wait(), 10)
        claim, claims = worker.claim_rows, []

        async def counted_claim(*args: Any) -> Any:
            rows = await claim(*args)
            claims.append(len(rows))
            return rows

        worker.claim_rows = counted_claim  # type: ignore[method-assign]
        for n in range(6):
            await insert_pointers(conn, page, 1, title_prefix=f"One at a time {n}")
            assert set((await watcher.until_final(1, timeout=10)).values()) == {"complete"}
            # Its task ends after its write: its slot is free (its done callback has run)
            # before the next insert, or that insert's claim would find the slot still taken.
            await asyncio.gather(*list(worker.in_flight.values()))
    # The worker has stopped: a refill sent after the last pointer would be counted too.
    assert claims == [1] * 6, f"rows found by each claim: {claims}"


async def test_a_notify_heard_while_a_refill_claim_holds_the_slot_is_not_lost(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    # A slot's refill claim found nothing, but has not returned yet when the next insert's
    # NOTIFY wakes the loop: the loop finds the slot taken and must claim again once the
    # refill ends, or the row waits for the 30 s poll.
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=1)
    _, page = await make_page(conn)
    returned_empty, release = asyncio.Event(), asyncio.Event()
    async with running_worker(settings) as worker:
        claim = worker.claim_rows
        claimed_before = False

        async def held_claim(*args: Any) -> Any:
            nonlocal claimed_before
            rows = await claim(*args)
            if rows:
                claimed_before = True
            elif claimed_before and not returned_empty.is_set():
                returned_empty.set()  # the statement ran before the next insert ...
                await release.wait()  # ... and returns only after its NOTIFY was heard
            return rows

        worker.claim_rows = held_claim  # type: ignore[method-assign]
        await asyncio.wait_for(worker.listener.ready.wait(), 10)
        await insert_pointers(conn, page, 1, title_prefix="First")
        assert set((await watcher.until_final(1, timeout=10)).values()) == {"complete"}
        await asyncio.wait_for(returned_empty.wait(), 10)
        turned, turn = asyncio.Event(), worker.loop_watch.turned

        def note_turn() -> None:
            turn()
            turned.set()

        worker.loop_watch.turned = note_turn  # type: ignore[method-assign]
        await insert_pointers(conn, page, 1, title_prefix="Second")
        await asyncio.wait_for(turned.wait(), 10)  # the loop heard the NOTIFY, found no free slot
        assert worker.claim_again, "the loop must ask for one more claim after the refill"
        release.set()
        assert set((await watcher.until_final(1, timeout=5)).values()) == {"complete"}


async def test_a_transient_failure_is_retried_after_backoff_and_completes(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    crops.gemini.script(["503", {"kind": "500"}])
    settings = worker_settings(
        provider_settings, db_url, pass2_poll_interval=0.2, pass2_backoff_base=0.8, pass2_backoff_max=2.0
    )
    _, page = await make_page(conn)
    [pointer] = await insert_pointers(conn, page, 1)
    async with running_worker(settings):
        pending = await watcher.until_status("pending", 1, timeout=10)
        row = await conn.fetchrow("SELECT *, now() AS at FROM pointers WHERE id = $1", pointer)
        assert pending == [str(pointer)]
        assert "503" in row["enrichment_error"] and row["enrichment_attempts"] == 1
        assert (row["enrichment_run_after"] - row["at"]).total_seconds() >= 0.4, "backoff honoured"
        assert await watcher.until_final(1, timeout=15) == {str(pointer): "complete"}
    row = await conn.fetchrow("SELECT * FROM pointers WHERE id = $1", pointer)
    assert row["enrichment_attempts"] == 3 and row["enrichment_error"] is None
    assert crops.gemini.calls == 3


async def test_a_quota_refusal_waits_for_retry_info_and_spends_no_attempt(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    crops.gemini.script([{"kind": "429_retry_info", "retry_delay": "0.4s"}])
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=30.0)
    _, page = await make_page(conn)
    [pointer] = await insert_pointers(conn, page, 1)
    async with running_worker(settings):
        assert await watcher.until_status("pending", 1, timeout=10) == [str(pointer)]
        row = await conn.fetchrow("SELECT *, now() AS at FROM pointers WHERE id = $1", pointer)
        assert row["enrichment_attempts"] == 0, "the attempt is given back"
        assert row["enrichment_error"] is None, "a wait is not a failure"
        assert json.loads(row["enrichment_metadata"])["last_wait"]["kind"] == "rate_limited"
        assert (row["enrichment_run_after"] - row["at"]).total_seconds() >= 0.3, "RetryInfo honoured"
        # Only the worker's own timer can wake it in time (30 s poll).
        assert await watcher.until_final(1, timeout=10) == {str(pointer): "complete"}
    row = await conn.fetchrow("SELECT * FROM pointers WHERE id = $1", pointer)
    assert row["enrichment_attempts"] == 1
    assert crops.gemini.calls == 2


async def test_attempts_are_bounded_the_reason_is_kept_and_requeue_brings_the_row_back(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    crops.gemini.script(["500"] * 3)
    # A 30 s poll: only the worker's own retry timer, and after the requeue only its
    # notification, can wake the worker in time.
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=30.0, pass2_max_attempts=3)
    _, page = await make_page(conn)
    [pointer] = await insert_pointers(conn, page, 1)
    async with running_worker(settings):
        assert await watcher.until_final(1, timeout=15) == {str(pointer): "failed"}
        row = await conn.fetchrow("SELECT * FROM pointers WHERE id = $1", pointer)
        assert row["enrichment_attempts"] == 3
        assert "gave up after 3 attempts" in row["enrichment_error"]
        assert crops.gemini.calls == 3

        code, output = await run_cli(settings, "requeue", "--all-failed")
        assert (code, output.strip().splitlines()[-1]) == (0, "requeued 1"), output
        assert await watcher.until_final(1, timeout=15) == {str(pointer): "complete"}
    row = await conn.fetchrow("SELECT * FROM pointers WHERE id = $1", pointer)
    assert row["enrichment_error"] is None and row["embedding"] is not None
    assert crops.gemini.calls == 4


async def test_a_permanent_failure_fails_at_once_with_an_actionable_reason(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    settings = worker_settings(provider_settings, db_url)
    _, page = await make_page(conn)
    [missing] = await insert_pointers(conn, page, 1, png_path="crops/nowhere.png")
    [blocked] = await insert_pointers(conn, page, 1, title_prefix="Blocked")
    crops.gemini.script(["safety"])
    async with running_worker(settings):
        assert await watcher.until_final(2, timeout=10) == {str(missing): "failed", str(blocked): "failed"}
    reasons = dict(await conn.fetch("SELECT id, enrichment_error FROM pointers"))
    assert "not found" in reasons[missing].lower() and "crops/nowhere.png" in reasons[missing]
    assert "safety" in reasons[blocked].lower()
    attempts = await conn.fetchval("SELECT max(enrichment_attempts) FROM pointers")
    assert attempts == 1
    assert crops.gemini.calls == 1, "a missing crop never reaches Gemini"


async def test_an_embedding_failure_is_retried_without_paying_for_gemini_again(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    crops.voyage.script(["500"])
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=0.2)
    _, page = await make_page(conn)
    [pointer] = await insert_pointers(conn, page, 1)
    async with running_worker(settings):
        assert await watcher.until_final(1, timeout=15) == {str(pointer): "complete"}
    assert crops.gemini.calls == 1
    assert crops.voyage.calls == 2
    meta = json.loads(await conn.fetchval("SELECT enrichment_metadata FROM pointers"))
    assert meta["reused_description"] is True and meta["attempt"] == 2


async def test_a_pointer_without_a_page_row_fails_and_the_worker_keeps_going(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    _, page = await make_page(conn)
    await conn.execute("ALTER TABLE pointers DROP CONSTRAINT pointers_page_id_fkey")
    [orphan] = await rows.insert_pointers(conn, [rows.NewPointer(uuid.uuid4(), "Orphan", CROP)])
    [good] = await insert_pointers(conn, page, 1)
    settings = worker_settings(provider_settings, db_url)
    async with running_worker(settings):
        assert await watcher.until_final(2, timeout=10) == {str(orphan): "failed", str(good): "complete"}
    assert "page row is missing" in await conn.fetchval(
        "SELECT enrichment_error FROM pointers WHERE id = $1", orphan
    )


async def test_a_lost_database_connection_is_survived(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=0.5)
    _, page = await make_page(conn)
    async with running_worker(settings, worker_id="survivor") as worker:
        await worker_ready(worker)
        terminated = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'pgqueue-enricher:survivor'"
        )
        assert terminated >= 2
        pointers = await insert_pointers(conn, page, 5)
        done = await watcher.until_final(5, timeout=20)
        assert set(done.values()) == {"complete"} and len(done) == len(pointers)
        await worker_ready(worker)
        assert worker.listener.connects >= 2, "the listener reconnected and LISTENs again"


async def test_a_side_duty_that_drops_a_cancel_does_not_hold_up_the_stop(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    """On Python 3.11 a cancel can be lost inside wait_for (CPython gh-86296); CI once saw a
    side duty carry on to a 15 s pause after one. The stop must cancel again until it ends."""
    settings = worker_settings(provider_settings, db_url, pass2_shutdown_grace=1.0)
    dropped = asyncio.Event()

    async def stubborn_listener() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            dropped.set()
        await asyncio.sleep(3600)

    _, page = await make_page(conn)
    # Inserted first: without a listener only the worker's first claim can find it in time.
    await insert_pointers(conn, page, 1)
    stop = asyncio.Event()
    worker = Worker(settings, stop_event=stop)
    worker.listener.run = stubborn_listener  # type: ignore[method-assign]
    task = asyncio.create_task(worker.run())
    assert set((await watcher.until_final(1, timeout=15)).values()) == {"complete"}
    stop.set()
    await asyncio.wait_for(task, 10)
    assert dropped.is_set(), "the first cancel reached the listener and was dropped"


async def test_metrics_and_healthz_are_served(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    settings = worker_settings(provider_settings, db_url)
    _, page = await make_page(conn)
    async with running_worker(settings) as worker:
        await insert_pointers(conn, page, 2)
        await watcher.until_final(2)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = await serve_metrics(worker, port, host="127.0.0.1")
        try:
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                health = await client.get(f"http://127.0.0.1:{port}/healthz")
        finally:
            server.close()
            await server.wait_closed()
    assert "pgqe_completions_total 2" in metrics
    assert 'pgqe_stage_seconds_count{stage="describe"} 2' in metrics
    assert 'pgqe_tokens_total{kind="prompt_tokens"} 3660' in metrics
    assert health.status_code == 200


async def test_without_a_working_listen_connection_polling_keeps_the_worker_correct(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    settings = worker_settings(
        provider_settings,
        db_url,
        pass2_poll_interval=0.3,
        database_listen_url=SecretStr(f"postgresql://nobody@127.0.0.1:{dead_port}/none"),
    )
    _, page = await make_page(conn)
    async with running_worker(settings) as worker:
        await insert_pointers(conn, page, 3)
        done = await watcher.until_final(3, timeout=15)
        assert set(done.values()) == {"complete"}
        assert not worker.listener.healthy and worker.listener.connects == 0
        assert "pgqe_listener_healthy 0" in worker.metrics.render(0)


async def test_a_pointer_deleted_while_in_flight_is_skipped_and_the_worker_goes_on(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    settings = worker_settings(provider_settings, db_url)
    _, page = await make_page(conn)
    gate = crops.gemini.hold()
    [doomed] = await insert_pointers(conn, page, 1, title_prefix="Doomed")
    async with running_worker(settings) as worker:
        await gate.arrivals(1)
        await conn.execute("DELETE FROM pointers WHERE id = $1", doomed)
        gate.release()
        [survivor] = await insert_pointers(conn, page, 1, title_prefix="Survivor")
        assert await watcher.until_final(1, timeout=10) == {str(survivor): "complete"}
    assert worker.metrics.lost == 1 and worker.metrics.completions == 1
    assert await conn.fetchval("SELECT count(*) FROM pointers") == 1


async def test_a_scheduled_retry_is_claimed_when_it_falls_due_not_at_the_next_poll_tick(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    # The doorbell rings when the row goes back to pending, a second before the retry is due;
    # with a 60 s poll interval only the worker's own wake-up at the due time claims it again.
    crops.gemini.script([{"kind": "429", "retry_delay": "1s"}])
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=60.0)
    _, page = await make_page(conn)
    [pointer] = await insert_pointers(conn, page, 1)
    async with running_worker(settings):
        assert await watcher.until_status("pending", 1, timeout=10) == [str(pointer)]
        assert await watcher.until_final(1, timeout=20) == {str(pointer): "complete"}
    # A 429 is a quota wait: the attempt it was claimed with was given back.
    assert await conn.fetchval("SELECT enrichment_attempts FROM pointers") == 1
