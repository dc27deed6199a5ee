"""The worker inside a host app: it logs as the CLI does, every line JSON and scrubbed, and a bad
configuration is seen at once instead of at shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from pgqueue_enricher.daemon import run_pass2_worker
from pgqueue_enricher.settings import ConfigError, Settings
from tests.fakes.pytest_plugin import FAKE_KEYS
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, settings_env, worker_settings
from tests.support.helpers import insert_pointers, make_page
from tests.support.pooler import PgBouncer

ROOT = Path(__file__).resolve().parents[2]


def test_a_configuration_error_raises_at_the_call_before_any_task_exists(provider_settings: Settings) -> None:
    settings = provider_settings.model_copy(
        update={"database_url": SecretStr("postgresql://x@127.0.0.1:1/x"), "gemini_api_key": None}
    )
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        run_pass2_worker(settings)  # no await, no event loop: the host's create_task line raises
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        run_pass2_worker(provider_settings.model_copy(update={"database_url": None}))


async def test_a_host_embedded_run_through_an_outage_prints_only_scrubbed_json_lines(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, pooler: PgBouncer,
    tmp_path: Path,
) -> None:  # fmt: skip
    watcher = await RowWatcher(conn).install()
    settings = worker_settings(
        provider_settings,
        pooler.url(db_url),  # carries the pooler's password, which the settings register
        database_listen_url=SecretStr(db_url),
        pass2_poll_interval=0.5,
        log_format="json",
        log_level="INFO",
    )
    env = {**settings_env(settings), "PYTHONPATH": str(ROOT)}
    log_path = tmp_path / "host.log"
    _, page = await make_page(conn)
    with log_path.open("wb") as log:
        host = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.host_app", env=env, cwd=tmp_path, stdout=log, stderr=log
        )
    try:
        await insert_pointers(conn, page, 2)
        assert set((await watcher.until_final(2, timeout=60)).values()) == {"complete"}
        pooler.kill()
        # Rung by the (direct) listener, the worker's claims now fail against the dead pooler.
        await insert_pointers(conn, page, 1, title_prefix="During")
        await asyncio.sleep(4.0)  # the outage itself: the pool's reconnects fail and asyncpg warns
        pooler.start()
        assert set((await watcher.until_final(1, timeout=60)).values()) == {"complete"}
        host.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(host.wait(), 30) == 0
    finally:
        if host.returncode is None:
            host.kill()
            await host.wait()
    output = log_path.read_text()
    lines = output.splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    events = {record["event"] for record in records}
    assert {"worker_starting", "pointer_complete", "claim_failed", "worker_stopped"} <= events, events
    from_stdlib = [record for record in records if "logger" in record]
    # asyncpg's own pool warning, traceback and all, is one JSON record.
    assert any(r["logger"] == "asyncpg.pool" and "Traceback" in r.get("exception", "") for r in from_stdlib)
    assert any(record["logger"] == "google_genai" for record in from_stdlib), from_stdlib
    for secret in (*FAKE_KEYS, pooler.password):
        assert secret not in output, secret
    assert "key=***" in output
