"""`/healthz` means health: it turns 503 within three poll intervals when the worker cannot work, and
says why; a fault that is not an outage stops the worker instead of being retried forever."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import structlog.testing
from pydantic import SecretStr

from pgqueue_enricher.cli import main as cli
from pgqueue_enricher.ops.metrics import serve_metrics
from pgqueue_enricher.queue.outages import WorkerFault
from pgqueue_enricher.queue.worker import Worker
from pgqueue_enricher.schema import sqlfiles
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.support.harness import running_worker, worker_settings
from tests.support.pooler import PgBouncer, free_port

POLL = 1.0
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


@contextlib.asynccontextmanager
async def healthz(worker: Worker) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose base URL is the worker's metrics server."""
    port = free_port()
    server = await serve_metrics(worker, port, host="127.0.0.1")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.close()
        await server.wait_closed()


async def until_health(client: httpx.AsyncClient, healthy: bool, timeout: float = 30.0) -> tuple[float, str]:
    """Seconds until /healthz says `healthy` (200) or not (503), and the body it said it with."""
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        while True:
            answer = await client.get("/healthz")
            if (answer.status_code == 200) == healthy:
                assert answer.status_code in (200, 503), answer
                return time.monotonic() - started, answer.text
            await asyncio.sleep(0.05)  # health is a state with no event of its own


async def test_healthz_turns_503_naming_the_database_within_three_poll_intervals_of_an_outage(
    db_url: str, provider_settings: Settings, crops: FakeServer, pooler: PgBouncer
) -> None:
    settings = worker_settings(
        provider_settings, pooler.url(db_url), database_listen_url=SecretStr(db_url), pass2_poll_interval=POLL
    )
    async with running_worker(settings) as worker, healthz(worker) as client:
        await until_health(client, healthy=True)
        pooler.kill()
        elapsed, body = await until_health(client, healthy=False)
        assert elapsed < 3 * POLL, elapsed
        assert body.startswith("database:"), body
        assert pooler.password not in body
        pooler.start()
        _, body = await until_health(client, healthy=True)
        assert body == "ok\n"


async def test_healthz_turns_503_naming_the_claim_loop_when_it_is_stuck(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer
) -> None:
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=POLL)
    async with running_worker(settings) as worker, healthz(worker) as client:
        await until_health(client, healthy=True)
        # Healthy already during the start-up grace: wait for a first completed claim, else the
        # lock below catches the first claim and the loop is "not started", not "stuck".
        async with asyncio.timeout(30):
            while True:
                if worker.loop_watch.last is not None:
                    break
                await asyncio.sleep(0.05)  # the loop watch is a timestamp with no event of its own
        # The next claim waits for this lock: the loop is stuck while SELECT 1 still answers.
        async with conn.transaction():
            await conn.execute("LOCK TABLE pointers IN ACCESS EXCLUSIVE MODE")
            locked = time.monotonic()
            _, body = await until_health(client, healthy=False)
            elapsed = time.monotonic() - locked
            assert elapsed < 3 * POLL, elapsed
            assert body.startswith("claim loop: stuck") and "database" not in body, body
        _, body = await until_health(client, healthy=True)


async def test_healthz_turns_503_naming_a_provider_pause_and_the_registry_shows_it(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer
) -> None:
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=POLL)
    pause: list[str] = []
    async with running_worker(settings) as worker, healthz(worker) as client:
        worker.provider_pause = lambda: pause[0] if pause else None
        await until_health(client, healthy=True)
        pause.append("gemini: the API key was refused; probing again at 12:00")
        elapsed, body = await until_health(client, healthy=False)
        assert elapsed < 3 * POLL and body == f"provider paused: {pause[0]}\n", (elapsed, body)
        await worker.registry.beat()
        assert await conn.fetchval("SELECT provider_pause FROM pgqueue_enricher_workers") == pause[0]


@contextlib.contextmanager
def sql_files_from(directory: Path) -> Iterator[None]:
    """The package reads its SQL from `directory` (a damaged copy) while this lasts."""
    original = sqlfiles.sql_root
    sqlfiles.blocks.cache_clear()
    sqlfiles.sql_root = lambda: directory  # type: ignore[assignment]
    try:
        yield
    finally:
        sqlfiles.sql_root = original  # type: ignore[assignment]
        sqlfiles.blocks.cache_clear()


async def test_a_missing_sql_file_or_a_broken_statement_stops_the_worker_instead_of_being_retried(
    db_url: str, provider_settings: Settings, crops: FakeServer, tmp_path: Path
) -> None:
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=0.2)
    missing = tmp_path / "missing"
    shutil.copytree(SQL_DIR, missing)
    (missing / "queries.sql").unlink()
    broken = tmp_path / "broken"
    shutil.copytree(SQL_DIR, broken)
    queries = broken / "queries.sql"
    queries.write_text(queries.read_text().replace("FOR UPDATE SKIP LOCKED", "FOR UPDATE SKIP LOKED", 1))

    with structlog.testing.capture_logs() as logs, sql_files_from(missing):
        with pytest.raises(WorkerFault, match=r"queries\.sql is missing"):
            await asyncio.wait_for(Worker(settings).run(), 30)
    assert not logs or {entry["event"] for entry in logs} <= {"worker_starting"}, logs

    with structlog.testing.capture_logs() as logs, sql_files_from(broken):
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await asyncio.wait_for(Worker(settings).run(), 30)
    events = [entry["event"] for entry in logs]
    assert "worker_stopped" in events
    assert not {"claim_failed", "database_retry", "database_unavailable"} & set(events), events


def test_a_worker_fault_exits_1_with_its_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(_args: object) -> int:
        raise WorkerFault("cannot read the worker's SQL: SQL file queries.sql is missing")

    monkeypatch.setitem(cli.COMMANDS, "run", fails)
    assert cli.main(["run"]) == 1
    assert capsys.readouterr().err == (
        "pgqueue-enricher: cannot read the worker's SQL: SQL file queries.sql is missing\n"
    )
