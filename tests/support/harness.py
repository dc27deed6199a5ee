"""Running the real worker in tests: in-process (asyncio task) or as `pgqueue-enricher run`
processes, against a test database and the fake providers, plus a way to await row changes
as events instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import SecretStr

from pgqueue_enricher.queue.worker import Worker
from pgqueue_enricher.settings import Settings

WATCH_CHANNEL = "test_pointer_changed"


def worker_settings(base: Settings, db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": SecretStr(db_url),
        "pass2_poll_interval": 30.0,
        "pass2_backoff_base": 0.05,
        "pass2_backoff_max": 0.2,
        "pass2_lease_seconds": 30.0,
        "pass2_shutdown_grace": 5.0,
        "log_format": "console",
    }
    values.update(overrides)
    return base.model_copy(update=values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a `pgqueue-enricher` process needs to behave like `settings`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PASS2_", "GEMINI_", "VOYAGE_", "SUPABASE_"))
    }
    for name, value in settings.model_dump().items():
        if value is None:
            env.pop(name.upper(), None)
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[name.upper()] = str(value)
    return env


class RowWatcher:
    """Awaitable changes of pointers.enrichment_status, delivered by a trigger + NOTIFY that
    the test installs in its own database."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.changes: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def install(self) -> RowWatcher:
        await self.conn.execute(
            f"""
            CREATE OR REPLACE FUNCTION test_watch_pointer() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.enrichment_status IS DISTINCT FROM OLD.enrichment_status THEN
                    PERFORM pg_notify('{WATCH_CHANNEL}', NEW.id || ' ' || NEW.enrichment_status);
                END IF;
                RETURN NULL;
            END $$;
            DROP TRIGGER IF EXISTS test_watch_pointer ON pointers;
            CREATE TRIGGER test_watch_pointer AFTER UPDATE ON pointers
                FOR EACH ROW EXECUTE FUNCTION test_watch_pointer();
            """
        )
        await self.conn.add_listener(WATCH_CHANNEL, self._on_change)
        return self

    def _on_change(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        pointer_id, status = payload.split(" ", 1)
        self.changes.put_nowait((pointer_id, status))

    async def until_final(self, count: int, timeout: float = 30.0) -> dict[str, str]:
        """Wait until `count` distinct pointers reached complete or failed; returns their statuses."""
        final: dict[str, str] = {}

        async def collect() -> None:
            while len(final) < count:
                pointer_id, status = await self.changes.get()
                if status in ("complete", "failed"):
                    final[pointer_id] = status

        await asyncio.wait_for(collect(), timeout)
        return final

    async def until_status(self, status: str, count: int = 1, timeout: float = 30.0) -> list[str]:
        seen: list[str] = []

        async def collect() -> None:
            while len(seen) < count:
                pointer_id, new_status = await self.changes.get()
                if new_status == status:
                    seen.append(pointer_id)

        await asyncio.wait_for(collect(), timeout)
        return seen


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, **options: Any) -> AsyncIterator[Worker]:
    """A worker running as a task in this event loop; stopped gracefully on exit."""
    stop = asyncio.Event()
    worker = Worker(settings, stop_event=stop, **options)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, settings.pass2_shutdown_grace + 10)


def spawn_worker(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    """A `pgqueue-enricher run` process. Its output goes to a file, never to a pipe that
    nobody reads: a full pipe would block the worker's logging and so the worker itself."""
    log = tempfile.NamedTemporaryFile(prefix="pgqe-worker-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "pgqueue_enricher", "run", *args],
        env=settings_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    process.log_path = log.name  # type: ignore[attr-defined]
    return process


async def run_cli(settings: Settings, *args: str) -> tuple[int, str]:
    """`pgqueue-enricher <args>` as a process with `settings` in its environment, without
    blocking this event loop (a worker may be running in it); returns (exit code, stdout)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pgqueue_enricher",
        *args,
        env=settings_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, output.decode()


PROVIDER_CHANNEL = "test_provider_changed"


class PauseWatcher:
    """Pause and resume of the provider rows, as awaitable events (a trigger + NOTIFY)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.changes: asyncio.Queue[tuple[str, bool, datetime | None]] = asyncio.Queue()

    async def install(self) -> PauseWatcher:
        await self.conn.execute(
            f"""
            CREATE OR REPLACE FUNCTION test_watch_provider() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('{PROVIDER_CHANNEL}', NEW.provider || ' ' || coalesce(NEW.paused_since::text, ''));
                RETURN NULL;
            END $$;
            CREATE TRIGGER test_watch_provider AFTER UPDATE ON pgqueue_enricher_provider_state
                FOR EACH ROW WHEN (OLD.paused_since IS DISTINCT FROM NEW.paused_since)
                EXECUTE FUNCTION test_watch_provider();
            """
        )
        await self.conn.add_listener(PROVIDER_CHANNEL, self._on_change)
        return self

    def _on_change(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        provider, _, since = payload.partition(" ")
        self.changes.put_nowait((provider, bool(since), datetime.fromisoformat(since) if since else None))

    async def until(self, provider: str, paused: bool, timeout: float = 30.0) -> datetime | None:
        async def wait() -> datetime | None:
            while True:
                name, now_paused, since = await self.changes.get()
                if name == provider and now_paused == paused:
                    return since

        return await asyncio.wait_for(wait(), timeout)
