"""A side duty that dies of something unexpected is logged and restarted, and nothing is lost.

Without the heartbeat every lease of the worker expires and its work is paid for twice;
without the rescue a crashed worker's rows stay `processing`; without the listener pickup
falls back to the poll. Each duty here raises once, at its first run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from structlog.testing import capture_logs

from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, running_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page


def raising_once(duty: Callable[[], Awaitable[None]], name: str) -> Callable[[], Awaitable[None]]:
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError(f"{name} tripped over a bug")
        await duty()

    return flaky


@pytest.mark.parametrize("duty", ["heartbeat", "rescue", "listener"])
async def test_a_side_duty_that_raises_once_is_restarted_and_the_worker_keeps_its_leases(
    duty: str,
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
) -> None:
    # A lease of 1.5 s and Gemini calls of 2.5 s: the rows complete only if the heartbeat,
    # restarted after its crash, keeps renewing them.
    settings = worker_settings(provider_settings, db_url, pass2_lease_seconds=1.5, pass2_poll_interval=0.5)
    crops.gemini.latency = 2.5
    _, page = await make_page(conn)
    pointers = await insert_pointers(conn, page, 3)
    with capture_logs() as logs:
        async with running_worker(settings) as worker:
            if duty == "listener":
                worker.listener.run = raising_once(worker.listener.run, duty)  # type: ignore[method-assign]
            else:
                attribute = f"_{duty}"
                setattr(worker, attribute, raising_once(getattr(worker, attribute), duty))
            done = await watcher.until_final(3, timeout=30)
    assert done == {str(p): "complete" for p in pointers}
    crashed = [e for e in logs if e["event"] == "side_duty_crashed"]
    assert [e["duty"] for e in crashed] == [duty]
    assert f"{duty} tripped over a bug" in crashed[0]["reason"]
    assert [e["duty"] for e in logs if e["event"] == "side_duty_restarted"] == [duty]
    # No lease ran out and nothing was paid for twice.
    assert not [e for e in logs if e["event"] in ("pointer_lease_expired", "pointer_lease_lost")]
    assert crops.gemini.calls == 3
    attempts = await conn.fetch("SELECT enrichment_attempts FROM pointers")
    assert {row["enrichment_attempts"] for row in attempts} == {1}
