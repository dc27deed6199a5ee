"""A model Google substitutes, and 429s that are not throttling, pause the fleet instead of
failing rows; the answers already paid for are kept with the stamps of the model that served."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack

import asyncpg
import pytest

from pgqueue_enricher.providers.gemini import is_substitution
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.support.harness import PauseWatcher, RowWatcher, run_cli, running_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page

REQUESTED = "gemini-3-flash-preview"
SERVED = "gemini-3.5-flash"


@pytest.mark.parametrize(
    ("served", "substituted"),
    [
        (REQUESTED, False),
        (f"{REQUESTED}-09-2026", False),  # a dated snapshot of the requested id
        (f"models/{REQUESTED}", False),
        (None, False),  # no modelVersion: no signal
        ("", False),
        (SERVED, True),
        ("gemini-3-flash", True),  # a prefix of the requested id is another model
        (f"{REQUESTED}2", True),  # no dash: not a snapshot
    ],
)
def test_only_another_model_than_the_requested_id_or_its_snapshot_is_a_substitution(
    served: str | None, substituted: bool
) -> None:
    assert is_substitution(REQUESTED, served) is substituted


async def stamps(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT enrichment_status AS status, enrichment_attempts AS attempts,
                  enrichment_metadata->>'model' AS model,
                  enrichment_metadata->>'model_version' AS model_version
           FROM pointers"""
    )


async def test_a_substituted_model_pauses_the_fleet_keeping_the_answers_it_paid_for(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer
) -> None:
    pauses = await PauseWatcher(conn).install()
    crops.gemini.served_model = SERVED
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=1.0, pass2_probe_base=30.0)
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 12)
    async with AsyncExitStack() as stack:
        worker = await stack.enter_async_context(running_worker(settings, worker_id="w0"))
        await pauses.until("gemini", paused=True)
        await worker.admission.refresh()
        health, metrics = worker.admission.pause_reason() or "", "\n".join(worker.admission.render_metrics())
        code, output = await run_cli(settings, "status", "--json")
        assert code == 0, output
        code, text = await run_cli(settings, "status")
        assert code == 0, text
    gemini = next(p for p in json.loads(output)["providers"] if p["provider"] == "gemini")
    assert gemini["paused"]["kind"] == "model_substituted"
    assert REQUESTED in gemini["paused"]["reason"] and SERVED in gemini["paused"]["reason"]
    assert "model_substituted" in text and SERVED in text and REQUESTED in text
    assert "model_substituted" in health and SERVED in health and REQUESTED in health  # /healthz
    assert 'pgqe_provider_paused{provider="gemini",kind="model_substituted"} 1' in metrics
    rows = await stamps(conn)
    assert not [r for r in rows if r["status"] == "failed"]
    revealed = [r for r in rows if r["status"] == "complete"]
    # The calls in flight when the first answer came back keep their answers; nothing after.
    assert 1 <= len(revealed) <= settings.pass2_max_concurrent
    assert {(r["model"], r["model_version"]) for r in revealed} == {(REQUESTED, SERVED)}
    waiting = [r for r in rows if r["status"] != "complete"]
    assert waiting and all(r["status"] == "pending" and r["attempts"] == 0 for r in waiting)


async def test_changing_pass2_model_lets_the_probe_lift_the_pause(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    pauses = await PauseWatcher(conn).install()
    crops.gemini.served_model = SERVED
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=1.0, pass2_probe_base=0.3)
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 6)
    async with running_worker(settings, worker_id="w0"):
        await pauses.until("gemini", paused=True)
    # The operator picks the model that serves, and restarts the worker: the probe succeeds.
    chosen = settings.model_copy(update={"pass2_model": SERVED})
    async with running_worker(chosen, worker_id="w1"):
        await pauses.until("gemini", paused=False)
        final = await watcher.until_final(6, timeout=60)
    assert set(final.values()) == {"complete"}
    rows = await stamps(conn)
    assert {r["model_version"] for r in rows} == {SERVED}


async def test_accept_goes_on_and_stamps_the_model_that_served(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    crops.gemini.served_model = SERVED
    settings = worker_settings(
        provider_settings, db_url, pass2_poll_interval=1.0, pass2_on_model_substitution="accept"
    )
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 5)
    async with running_worker(settings):
        final = await watcher.until_final(5, timeout=60)
    assert set(final.values()) == {"complete"}
    assert {(r["model"], r["model_version"]) for r in await stamps(conn)} == {(REQUESTED, SERVED)}
    paused = await conn.fetchval(
        "SELECT paused_since FROM pgqueue_enricher_provider_state WHERE provider = 'gemini'"
    )
    assert paused is None


async def test_a_dated_snapshot_of_the_requested_model_is_no_substitution(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    crops.gemini.served_model = f"{REQUESTED}-12-2026"
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=1.0)
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 4)
    async with running_worker(settings):
        final = await watcher.until_final(4, timeout=60)
    assert set(final.values()) == {"complete"}


async def test_a_spend_cap_429_pauses_the_fleet_with_no_row_failed(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer
) -> None:
    pauses = await PauseWatcher(conn).install()
    crops.gemini.outage("spend_cap")
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=1.0, pass2_probe_base=30.0)
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 8)
    async with running_worker(settings):
        await pauses.until("gemini", paused=True)
    state = await conn.fetchrow("SELECT * FROM pgqueue_enricher_provider_state WHERE provider = 'gemini'")
    assert state["paused_kind"] == "spend_cap" and "spend cap" in state["paused_reason"]
    rows = await stamps(conn)
    assert all(r["status"] == "pending" and r["attempts"] == 0 for r in rows)


def test_an_unknown_substitution_policy_exits_2_naming_the_variable(
    provider_settings: Settings, db_url: str
) -> None:
    import subprocess
    import sys

    from tests.support.harness import settings_env

    env = {
        **settings_env(worker_settings(provider_settings, db_url)),
        "PASS2_ON_MODEL_SUBSTITUTION": "ignore",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pgqueue_enricher", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "PASS2_ON_MODEL_SUBSTITUTION" in result.stderr
