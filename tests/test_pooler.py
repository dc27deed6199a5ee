"""The daemon and the CLI through a real transaction pooler (PgBouncer, as Supabase's port 6543)."""

from __future__ import annotations

import json

import asyncpg
from pydantic import SecretStr

from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.harness import RowWatcher, run_cli, running_worker, worker_settings
from tests.helpers import insert_pointers, make_page
from tests.pooler import PgBouncer


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
        crops.gemini.script(["401"])  # one pointer fails, for requeue to bring back
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
