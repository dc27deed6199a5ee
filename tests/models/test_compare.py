"""`compare`: exactly N candidate calls on a reproducible sample, and no pointers row changes."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, run_cli, running_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page


async def test_compare_makes_exactly_n_candidate_calls_and_leaves_every_pointer_row_unchanged(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    tmp_path: Path,
) -> None:
    settings = worker_settings(provider_settings, db_url)
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 6)
    async with running_worker(settings):
        await watcher.until_final(6, timeout=30)
    before = [dict(row) for row in await conn.fetch("SELECT * FROM pointers ORDER BY id")]
    calls = len(crops.gemini.requests)

    out = tmp_path / "compare.json"
    code, output = await run_cli(
        settings,
        "compare",
        "--model",
        "gemini-3.5-flash",
        "--sample",
        "3",
        "--seed",
        "7",
        "--json",
        "--output",
        str(out),
    )
    assert code == 0, output
    new_requests = crops.gemini.requests[calls:]
    assert len(new_requests) == 3
    assert all("models/gemini-3.5-flash:" in request.path for request in new_requests)
    assert [dict(row) for row in await conn.fetch("SELECT * FROM pointers ORDER BY id")] == before

    report = json.loads(output)
    assert report == json.loads(out.read_text())
    assert report["total"]["pointers"] == 3 and report["total"]["answered"] == 3
    first = report["pointers"][0]
    assert first["candidate"]["model_version"] == "gemini-3.5-flash"
    assert first["stored"]["model_version"] == "gemini-3-flash-preview"
    assert first["candidate"]["reference_agreement"] == 1.0  # the fake answers alike
    assert first["candidate"]["sections"] == first["stored"]["sections"]
    assert first["candidate"]["tokens"] > 0 and first["candidate"]["estimated_cost_usd"] > 0

    code, again = await run_cli(
        settings, "compare", "--model", "gemini-3.5-flash", "--sample", "3", "--seed", "7", "--json"
    )
    assert [p["pointer_id"] for p in json.loads(again)["pointers"]] == [
        p["pointer_id"] for p in report["pointers"]
    ]
    code, text = await run_cli(settings, "compare", "--model", "gemini-3.5-flash", "--sample", "2")
    assert code == 0 and "total candidate" in text and "mean reference agreement 100%" in text


async def test_compare_asks_the_fleet_s_gate_for_every_call(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    # 60 calls a minute: each permit moves the fleet's schedule on by a second's share.
    settings = worker_settings(provider_settings, db_url, pass2_gemini_rpm=60)
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 3)
    async with running_worker(settings):
        await watcher.until_final(3, timeout=30)
    before = await conn.fetchval(
        "SELECT next_free_at FROM pgqueue_enricher_provider_state WHERE provider = 'gemini'"
    )
    code, output = await run_cli(settings, "compare", "--model", "gemini-3.5-flash", "--sample", "3")
    assert code == 0, output
    after = await conn.fetchval(
        "SELECT next_free_at FROM pgqueue_enricher_provider_state WHERE provider = 'gemini'"
    )
    # Three permits at 60/min (with the gate's headroom): the schedule moved about 3 s on.
    assert (after - before).total_seconds() >= 3 * 60 / 60 * 0.9
