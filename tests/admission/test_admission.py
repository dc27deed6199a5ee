"""Provider admission: the fleet-wide gate, the adaptive rate and the pause, on a real
database, and whole workers riding out a refused key, a retired model, an outage and a spent
daily quota against the wire-level fake."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

import asyncpg
import psycopg
import pytest

from pgqueue_enricher.admission import gate as admission
from pgqueue_enricher.admission import provider_state
from pgqueue_enricher.admission.gate import HEADROOM, Admission, Grant, ProviderState, read_states
from pgqueue_enricher.errors import PermanentFailure, TransientFailure
from pgqueue_enricher.settings import ConfigError, Settings, load_settings
from tests.fakes.server import FakeServer
from tests.support.harness import PauseWatcher, RowWatcher, run_cli, running_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page, raised_failure


def text_of(tokens: int) -> str:
    """A call's input text whose estimate (gate.estimate_tokens, no image) is `tokens`."""
    return "x" * ((tokens - 1) * 4)


async def admit(gate: Admission, provider: str = "gemini", tokens: int = 1000) -> Grant:
    return await gate.admit(provider, text_of(tokens))


async def permit(db: Any, tokens: int | None = 1000, hold: float = 20.0, increase: float = 0.0) -> Any:
    """A Gemini permit straight from the function, as a worker's gate asks it."""
    return await provider_state.permit(db, "gemini", tokens, 0, hold, HEADROOM, increase, "w-test", 60.0)


def admission_for(pool: asyncpg.Pool, worker_id: str, **settings: Any) -> Admission:
    async def db(operation: Any, *args: Any, attempts: int = 1) -> Any:
        return await operation(pool, *args)

    return Admission(load_settings(_env_file=None, **settings), worker_id, db)


# -- the gate -------------------------------------------------------------------------------


async def test_permits_of_two_workers_get_their_own_slots_in_time_order(pool: asyncpg.Pool) -> None:
    one = admission_for(pool, "w1", pass2_gemini_rpm=600)
    two = admission_for(pool, "w2", pass2_gemini_rpm=600)
    await one.start()
    await two.start()
    waits = []
    for gate in (one, two, one, two, one, two):
        row = await gate.db(permit)
        assert row["reserved"]
        waits.append(row["wait_s"])
    spacing = 60 / (600 * HEADROOM)
    assert waits[0] <= 0.05
    for earlier, later in zip(waits, waits[1:], strict=False):
        assert later - earlier == pytest.approx(spacing, abs=0.03), waits


async def test_a_waiter_sleeps_until_its_slot_holding_no_connection(pool: asyncpg.Pool) -> None:
    gate = admission_for(pool, "w1", pass2_gemini_rpm=120)
    await gate.start()
    first = await admit(gate)
    answered = asyncio.Event()
    inner_db = gate.db

    async def noting(operation: Any, *args: Any, attempts: int = 1) -> Any:
        result = await inner_db(operation, *args)
        answered.set()
        return result

    gate.db = noting
    second = asyncio.create_task(admit(gate))
    await answered.wait()
    # The permit statement has answered; the call now sleeps 0.5 s until its slot with every
    # pooled connection back in the pool.
    assert not second.done()
    assert pool.get_idle_size() == pool.get_size()
    permit = await second
    assert first.epoch == permit.epoch == 0


async def test_a_slot_too_far_away_is_not_reserved_and_the_row_waits_instead(pool: asyncpg.Pool) -> None:
    gate = admission_for(pool, "w1", pass2_gemini_rpm=1)  # one call a minute
    await gate.start()
    await admit(gate)
    failure = await raised_failure(admit(gate))
    assert (failure.scope, failure.kind) == ("wait", "gate_wait")
    assert failure.retry_after == pytest.approx(60 / HEADROOM, abs=1)
    state = (await read_states(pool))["gemini"]
    assert state.admitted_total == 1, "the refused permit reserved nothing"


async def test_token_budget_spaces_calls_and_is_corrected_from_usage(pool: asyncpg.Pool) -> None:
    gate = admission_for(pool, "w1", pass2_gemini_tpm=60_000)  # 1,000 tokens a second
    await gate.start()
    grant = await admit(gate, "gemini", 2000)
    await gate.succeeded(grant, 1000)  # the provider counted half the estimate
    await gate.flush()  # what the refresh loop does; the direct statement below bypasses the gate
    row = await permit(pool, 2000)
    assert row["wait_s"] == pytest.approx(1000 / 1000 / HEADROOM, abs=0.1)


async def test_no_limit_and_no_pause_costs_no_statement(pool: asyncpg.Pool) -> None:
    calls: list[str] = []
    gate = admission_for(pool, "w1")
    inner_db = gate.db

    async def counting(operation: Any, *args: Any, attempts: int = 1) -> Any:
        calls.append(operation.__name__)
        return await inner_db(operation, *args)

    await gate.start()
    gate.db = counting
    for _ in range(5):
        await gate.succeeded(await admit(gate), 1000)
    assert calls == []


# -- adaptive -------------------------------------------------------------------------------


async def test_a_429_naming_its_quota_lowers_the_shared_rate_once_per_epoch_and_admissions_raise_it_again(
    pool: asyncpg.Pool,
) -> None:
    one, two = admission_for(pool, "w1"), admission_for(pool, "w2")
    await one.start()
    await two.start()
    quota = TransientFailure("rate_limited", "429", scope="wait", provider="gemini", quota_per_minute=600)
    permit_one = await admit(one)
    permit_two = await admit(two)
    await one.failed(permit_one, quota)
    await two.failed(permit_two, quota)  # admitted under the same epoch: no second decrease
    state = (await read_states(pool))["gemini"]
    assert state.admitted_rpm == pytest.approx(600 * admission.DECREASE)
    assert (state.epoch, state.rejected_total, state.quota_rpm) == (1, 2, 600)
    assert quota.retry_after is not None and quota.retry_after > 0
    # A later refusal (admitted under the new epoch) lowers it again: a named quota is a clear
    # signal, cut once per epoch with no decrease window ...
    increase = admission.INCREASE_SHARE * 600  # the admission of `later` raised it
    await two.refresh()
    later = await admit(two)
    await two.failed(later, quota)
    lowered = (await read_states(pool))["gemini"].admitted_rpm
    assert lowered == pytest.approx((600 * admission.DECREASE + increase) * admission.DECREASE, rel=0.01)
    # ... and quiet admissions raise it, never above the quota the provider named.
    await one.refresh()
    for _ in range(300):
        await permit(pool, 1, 1e6, admission.INCREASE_SHARE * 600)
    state = (await read_states(pool))["gemini"]
    assert state.admitted_rpm == pytest.approx(600)


async def eight_unnamed_429s(pool: asyncpg.Pool, quota_rpm: float | None) -> tuple[Admission, ProviderState]:
    """A gate at a learnt rate of 6,000/min (high enough that the permits are not paced apart)
    whose next eight calls are refused with 429s that name no quota; the state after them."""
    gate = admission_for(pool, "w1")
    await gate.start()
    await pool.execute(
        "UPDATE pgqueue_enricher_provider_state SET admitted_rpm = 6000, quota_rpm = $1 WHERE provider = 'gemini'",
        quota_rpm,
    )
    await gate.refresh()
    noise = TransientFailure("rate_limited", "429", scope="wait", provider="gemini")
    for _ in range(8):  # each admitted under the newest epoch, all within one decrease window
        await gate.failed(await admit(gate), noise)
        await gate.refresh()
    return gate, (await read_states(pool))["gemini"]


async def test_random_429s_that_name_no_quota_cut_once_per_window_and_the_next_calls_make_it_good(
    pool: asyncpg.Pool,
) -> None:
    gate, state = await eight_unnamed_429s(pool, None)
    assert state.rejected_total == 8 and state.epoch == 1, "more than one cut within the window"
    # One cut of 15 %, made good within the next ten calls (each raises the rate by 2 % of it).
    for _ in range(2):
        await gate.succeeded(await admit(gate, "gemini", 1), 0)
        await gate.refresh()
    assert (await read_states(pool))["gemini"].admitted_rpm >= 6000
    assert admission.FLOOR_RPM <= admission.START_RPM * admission.DECREASE


async def test_unnamed_429s_cut_once_per_window_even_when_a_quota_is_known(pool: asyncpg.Pool) -> None:
    _, state = await eight_unnamed_429s(pool, 6000)
    assert (state.rejected_total, state.epoch) == (8, 1), "an unnamed 429 is one signal per window"
    # One cut of 15 % (the admissions since raise it a little); two would leave it under 4,400.
    assert 6000 * admission.DECREASE * 0.98 < state.admitted_rpm < 6000


async def test_a_refusal_under_a_configured_limit_cuts_mildly_and_never_above_the_limit(
    pool: asyncpg.Pool,
) -> None:
    gate = admission_for(pool, "w1", pass2_gemini_rpm=100)
    await gate.start()
    grant = await admit(gate)
    quota = TransientFailure("rate_limited", "429", scope="wait", provider="gemini", quota_per_minute=6000)
    await gate.failed(grant, quota)
    state = (await read_states(pool))["gemini"]
    assert state.admitted_rpm is not None and state.admitted_rpm <= 100
    # The limit is within the quota the provider named: the refusal is jitter, the cut mild.
    assert state.admitted_rpm == pytest.approx(100 * admission.MILD_DECREASE)


# -- the pause ------------------------------------------------------------------------------


async def test_a_refused_key_pauses_once_and_one_worker_probes_per_backoff(pool: asyncpg.Pool) -> None:
    one = admission_for(pool, "w1", pass2_probe_base=30)
    two = admission_for(pool, "w2", pass2_probe_base=30)
    await one.start()
    await two.start()
    refused = PermanentFailure("auth", "Gemini refused the API key", scope="systemic", provider="gemini")
    await one.failed(await admit(one), refused)
    await two.refresh()
    state = (await read_states(pool))["gemini"]
    assert (state.paused_kind, state.paused_reason) == ("auth", "Gemini refused the API key")
    assert 25 < state.next_probe_in_s <= 30
    assert two.claimable(3, 0) == 0 and one.claimable(3, 0) == 0
    blocked = await raised_failure(admit(two))
    assert (blocked.scope, blocked.kind) == ("systemic", "provider_paused")
    # The probe falls due: both workers claim one row to probe with, and exactly one of them
    # gets the permit as the fleet's probe; the other's call is refused as paused.
    await pool.execute(
        "UPDATE pgqueue_enricher_provider_state SET next_probe_at = now() WHERE provider = 'gemini'"
    )
    await one.refresh()
    await two.refresh()
    assert one.claimable(3, 0) == 1 and two.claimable(3, 0) == 1
    assert one.claimable(3, 1) == 0, "a worker with a row in flight does not probe"
    asked = await asyncio.gather(admit(one), admit(two), return_exceptions=True)
    probes = [grant for grant in asked if isinstance(grant, Grant)]
    assert len(probes) == 1 and probes[0].probe, asked
    refused = next(failure for failure in asked if not isinstance(failure, Grant))
    assert isinstance(refused, TransientFailure) and refused.kind == "provider_paused"
    state = (await read_states(pool))["gemini"]
    assert 55 < state.next_probe_in_s <= 60, "the next probe is a doubled backoff away"
    assert state.probe_by in ("w1", "w2")
    prober = one if isinstance(asked[0], Grant) else two
    await prober.succeeded(probes[0], 1000)
    assert not (await read_states(pool))["gemini"].paused


async def test_outages_pause_only_after_enough_in_a_row_across_the_fleet(pool: asyncpg.Pool) -> None:
    one, two = admission_for(pool, "w1"), admission_for(pool, "w2")
    await one.start()
    await two.start()
    for n in range(admission.OUTAGE_THRESHOLD - 1):
        gate = (one, two)[n % 2]
        down = TransientFailure("gemini_unavailable", "503", scope="outage", provider="gemini")
        await gate.failed(await admit(gate), down)
        assert down.scope == "outage", "a single outage is the row's retry"
    # A success ends the run of failures.
    await one.succeeded(await admit(one), 1000)
    assert (await read_states(pool))["gemini"].consecutive_failures == 0
    last = None
    for n in range(admission.OUTAGE_THRESHOLD):
        gate = (one, two)[n % 2]
        last = TransientFailure("gemini_unavailable", "503", scope="outage", provider="gemini")
        await gate.failed(await admit(gate), last)
    assert last is not None and last.scope == "systemic" and last.gives_attempt_back
    assert (await read_states(pool))["gemini"].paused_kind == "gemini_unavailable"


async def test_a_pause_can_be_read_and_lifted_from_sql(db_url: str, pool: asyncpg.Pool) -> None:
    gate = admission_for(pool, "w1", pass2_voyage_rpm=300)
    await gate.start()
    refused = PermanentFailure("auth", "Voyage refused the API key", scope="systemic", provider="voyage")
    await gate.failed(await admit(gate, "voyage", 10), refused)
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT provider, rpm_limit, paused_kind FROM pgqueue_enricher_provider_state ORDER BY provider"
        ).fetchall()
        assert rows == [("gemini", None, None), ("voyage", 300.0, "auth")]
        assert conn.execute("SELECT pgqueue_enricher_resume_provider('voyage')").fetchone() == (True,)
        assert conn.execute("SELECT pgqueue_enricher_resume_provider('voyage')").fetchone() == (False,)
    assert not (await read_states(pool))["voyage"].paused


async def test_the_provider_table_is_closed_to_supabase_client_roles(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        enabled = conn.execute(
            "SELECT relrowsecurity FROM pg_class WHERE relname = 'pgqueue_enricher_provider_state'"
        ).fetchone()
        assert enabled == (True,)


async def test_replaying_the_living_file_changes_no_definition(db_url: str) -> None:
    from pgqueue_enricher.schema.sqlfiles import blocks

    query = "SELECT proname, md5(prosrc), proconfig FROM pg_proc WHERE proname LIKE 'pgqueue_enricher%'"
    with psycopg.connect(db_url, autocommit=True) as conn:
        before = conn.execute(query).fetchall()
        conn.execute(blocks("definitions/admission.sql")["upgrade"])
        assert conn.execute(query).fetchall() == before and before


@pytest.mark.parametrize("value", ["-5", "abc", "0", "nan"])
def test_a_bad_limit_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="PASS2_GEMINI_RPM"):
        load_settings(_env_file=None, pass2_gemini_rpm=value)


# -- whole workers against the fake ---------------------------------------------------------


async def fleet(stack: AsyncExitStack, settings: Settings, count: int = 2) -> list[Any]:
    return [
        await stack.enter_async_context(running_worker(settings, worker_id=f"w{n}")) for n in range(count)
    ]


def probe_times(fake: FakeServer, paused_at: datetime, until: float) -> list[float]:
    """Arrival times of Gemini calls made after every worker knew of the pause."""
    settle = paused_at.timestamp() + 1.0
    return sorted(r.at for r in fake.gemini.requests if settle < r.at < until)


@pytest.mark.parametrize(
    ("mode", "kind", "words"),
    [
        ("key_revoked", "auth", "GEMINI_API_KEY"),
        ("model_gone", "config", "PASS2_MODEL"),
        ("down", "gemini_unavailable", "unavailable"),
    ],
)
async def test_a_systemic_failure_pauses_the_fleet_and_every_row_completes_after_recovery(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    mode: str,
    kind: str,
    words: str,
) -> None:
    pauses = await PauseWatcher(conn).install()
    base = 0.5
    settings = worker_settings(
        provider_settings, db_url, pass2_poll_interval=1.0, pass2_probe_base=base, pass2_probe_max=1.0
    )
    _, page = await make_page(conn)
    crops.gemini.outage(mode)
    await insert_pointers(conn, page, 60)
    async with AsyncExitStack() as stack:
        await fleet(stack, settings)
        paused_at = await pauses.until("gemini", paused=True)
        assert paused_at is not None
        # While paused: status names the cause, nothing failed, no row spent its attempts.
        code, output = await run_cli(settings, "status", "--json")
        assert code == 0, output
        gemini = next(p for p in json.loads(output)["providers"] if p["provider"] == "gemini")
        assert gemini["paused"]["kind"] == kind and words in gemini["paused"]["reason"]
        code, text = await run_cli(settings, "status")
        assert "gemini" in text and "PAUSED" in text and words in text
        await asyncio.sleep(3.0)  # the outage lasts a while: probes happen during it
        recovered = time.time()
        crops.gemini.outage(None)
        final = await watcher.until_final(60, timeout=60)
    assert set(final.values()) == {"complete"}
    failed = await conn.fetchval("SELECT count(*) FROM pointers WHERE enrichment_status = 'failed'")
    assert failed <= 2
    probes = probe_times(crops, paused_at, recovered)
    assert len(probes) <= 1 + (recovered - paused_at.timestamp()) / base, probes
    gaps = [later - earlier for earlier, later in zip(probes, probes[1:], strict=False)]
    assert all(gap >= base * 0.9 for gap in gaps), gaps
    assert (
        await conn.fetchval(
            "SELECT paused_since FROM pgqueue_enricher_provider_state WHERE provider = 'gemini'"
        )
        is None
    )


async def test_a_spent_daily_quota_keeps_rows_pending_with_their_attempts_until_the_reset(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    pauses = await PauseWatcher(conn).install()
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=1.0, pass2_probe_base=0.5)
    _, page = await make_page(conn)
    crops.gemini.daily_quota(reset_in=4.0)
    await insert_pointers(conn, page, 30)
    async with AsyncExitStack() as stack:
        await fleet(stack, settings)
        await pauses.until("gemini", paused=True)
        state = await conn.fetchrow("SELECT * FROM pgqueue_enricher_provider_state WHERE provider = 'gemini'")
        assert state["paused_kind"] == "daily_quota"
        assert crops.gemini.daily_reset_at is not None
        assert state["next_probe_at"].timestamp() >= crops.gemini.daily_reset_at - 0.5, (
            "probe after the reset"
        )
        await pauses.until("gemini", paused=False, timeout=30)
        calls_until_reset = crops.gemini.outcomes["daily_quota"]
        rows = await conn.fetch("SELECT enrichment_status, enrichment_attempts FROM pointers")
        final = await watcher.until_final(30, timeout=60)
    assert calls_until_reset <= 2 * settings.pass2_max_concurrent + 2, crops.gemini.outcomes
    assert all(r["enrichment_attempts"] <= 1 for r in rows if r["enrichment_status"] != "complete")
    assert set(final.values()) == {"complete"}


async def test_a_configured_limit_keeps_the_fleet_under_the_quota_with_one_attempt_per_row(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    crops.gemini.quota(5, 1.0)
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=1.0, pass2_gemini_rpm=300)
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 20)
    async with AsyncExitStack() as stack:
        await fleet(stack, settings)
        final = await watcher.until_final(20, timeout=60)
    assert set(final.values()) == {"complete"}
    assert await conn.fetchval("SELECT max(enrichment_attempts) FROM pointers") == 1
    refused = crops.gemini.outcomes["quota"]
    assert refused <= 2, crops.gemini.outcomes


async def test_healthz_turns_503_naming_the_pause_and_metrics_report_it(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer
) -> None:
    from pgqueue_enricher.ops.metrics import serve_metrics

    pauses = await PauseWatcher(conn).install()
    crops.gemini.outage("key_revoked")
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 2)
    settings = worker_settings(provider_settings, db_url, pass2_poll_interval=1.0)
    async with running_worker(settings) as worker:
        await pauses.until("gemini", paused=True)
        server = await serve_metrics(worker, 0, "127.0.0.1")
        port = server.sockets[0].getsockname()[1]
        try:
            health = await http_get(port, "/healthz")
            metrics = await http_get(port, "/metrics")
        finally:
            server.close()
            await server.wait_closed()
    assert (
        health.startswith("HTTP/1.1 503")
        and "provider paused: gemini paused since" in health
        and "GEMINI_API_KEY" in health
    )
    assert 'pgqe_provider_paused{provider="gemini",kind="auth"} 1' in metrics


async def http_get(port: int, path: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data.decode()


async def test_a_named_quota_is_forgotten_after_an_hour_without_a_cut_and_the_rate_grows_past_it(
    pool: asyncpg.Pool,
) -> None:
    gate = admission_for(pool, "w1")
    await gate.start()
    quota = TransientFailure("rate_limited", "429", scope="wait", provider="gemini", quota_per_minute=600)
    await gate.failed(await admit(gate), quota)
    await gate.refresh()
    assert gate.states["gemini"].quota_rpm == 600, "a recent cut: the quota stands"
    # An hour and a bit later with no refusal (Google may have raised the project's quota).
    await pool.execute(
        "UPDATE pgqueue_enricher_provider_state SET last_cut_at = now() - interval '61 minutes',"
        " admitted_rpm = 597 WHERE provider = 'gemini'"
    )
    await gate.refresh()
    state = (await read_states(pool))["gemini"]
    assert state.quota_rpm is None and gate.states["gemini"].quota_rpm is None
    for _ in range(20):  # quiet admissions now raise the rate past the old quota
        await admit(gate)
    assert (await read_states(pool))["gemini"].admitted_rpm > 600
    # A quota set by hand (no cut on record) is the operator's and stays.
    await pool.execute(
        "UPDATE pgqueue_enricher_provider_state SET quota_rpm = 900, last_cut_at = NULL WHERE provider = 'gemini'"
    )
    await gate.refresh()
    assert (await read_states(pool))["gemini"].quota_rpm == 900


@pytest.mark.parametrize("revision", [None, "0012"], ids=["never migrated", "one revision behind"])
async def test_run_refuses_a_database_behind_the_package_s_head_once_at_start_up(
    empty_db_url: str, provider_settings: Settings, revision: str | None
) -> None:
    from pgqueue_enricher.schema import migrations

    if revision is not None:
        migrations.upgrade(empty_db_url, revision)
    code, output = await run_cli(worker_settings(provider_settings, empty_db_url), "run")
    assert code == 2, output
    assert "run `pgqueue-enricher migrate`" in output and "behind" in output
