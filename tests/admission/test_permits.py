"""The permit of one call: the fleet's GCRA schedule as the permit function keeps it, the token
corrections that reach the shared budget, and one permit statement per gated call in a whole
worker, on a real database."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from pgqueue_enricher.admission import gate as admission
from pgqueue_enricher.admission import provider_state
from pgqueue_enricher.admission.gate import HEADROOM, Admission, read_states
from pgqueue_enricher.settings import Settings, load_settings
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, running_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page


class Statements:
    """One Admission's executor: notes every statement it runs, and can fail the next permit
    statement as a lost connection would."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.permits: list[tuple[int | None, int]] = []  # (tokens, correction) of each permit statement
        self.others: list[str] = []  # every other statement, by its helper's name
        self.fail_next = False

    async def __call__(self, operation: Any, *args: Any, attempts: int = 1) -> Any:
        if operation is not provider_state.permit:
            self.others.append(operation.__name__)
            return await operation(self.pool, *args)
        if self.fail_next:
            self.fail_next = False
            raise asyncpg.PostgresConnectionError("the connection was lost")
        self.permits.append((args[1], args[2]))
        return await operation(self.pool, *args)


def gate_for(pool: asyncpg.Pool, worker_id: str, **settings: Any) -> tuple[Admission, Statements]:
    statements = Statements(pool)
    return Admission(load_settings(_env_file=None, **settings), worker_id, statements), statements


def text_of(tokens: int) -> str:
    """A call's input text whose estimate (gate.estimate_tokens, no image) is `tokens`."""
    return "x" * ((tokens - 1) * 4)


async def test_slots_follow_the_request_rate_the_token_budget_and_the_adaptive_rate_up_to_its_quota(
    pool: asyncpg.Pool,
) -> None:
    """The schedule starts an hour out, in one transaction (one now()): each call's slot is the
    later of the request and the token schedule, each moved on by its share at the rate after
    the increases of the calls before it, capped by the named quota."""
    rpm, tpm, admitted, quota, increase = 600.0, 60_000.0, 500.0, 520.0, 3.0
    tokens = [1000, 200, 3000, 50, 800, 1200, 10, 5000, 400, 700, 1, 90]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE pgqueue_enricher_provider_state SET rpm_limit = $1, tpm_limit = $2, admitted_rpm = $3,"
            " quota_rpm = $4, next_free_at = now() + interval '1 hour',"
            " tokens_free_at = now() + interval '1 hour' - interval '1 second' WHERE provider = 'gemini'",
            rpm,
            tpm,
            admitted,
            quota,
        )
        waits = []
        for n in tokens:
            row = await provider_state.permit(conn, "gemini", n, 0, 1e9, HEADROOM, increase, "w1", 60.0)
            assert row["reserved"] and not row["paused"]
            waits.append(row["wait_s"])
        state = await conn.fetchrow(
            "SELECT admitted_rpm, admitted_total, extract(epoch FROM next_free_at - now())::float8 AS nf,"
            " extract(epoch FROM tokens_free_at - now())::float8 AS tf"
            " FROM pgqueue_enricher_provider_state WHERE provider = 'gemini'"
        )
    expected, next_free, tokens_free, rate = [], 3600.0, 3599.0, admitted
    for n in tokens:
        slot = max(next_free, tokens_free)
        expected.append(slot)
        next_free = slot + 60 / (min(rpm, rate) * HEADROOM)
        tokens_free = slot + n * 60 / (tpm * HEADROOM)
        rate = min(rate + increase, quota)
    assert waits == pytest.approx(expected, abs=1e-4)
    assert (state["nf"], state["tf"]) == pytest.approx((next_free, tokens_free), abs=1e-4)
    assert state["admitted_rpm"] == pytest.approx(quota) and state["admitted_total"] == len(tokens)


async def test_a_slot_beyond_the_hold_reserves_nothing_and_tells_the_wait(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "UPDATE pgqueue_enricher_provider_state SET rpm_limit = 60,"
        " next_free_at = now() + interval '10 minutes' WHERE provider = 'gemini'"
    )
    row = await provider_state.permit(pool, "gemini", 10, 0, admission.MAX_HOLD_S, HEADROOM, 0.0, "w1", 60.0)
    assert not row["reserved"] and 590 < row["wait_s"] <= 600
    assert (await read_states(pool))["gemini"].admitted_total == 0


async def test_token_corrections_cost_no_statement_and_ride_with_the_next_permit(pool: asyncpg.Pool) -> None:
    gate, statements = gate_for(pool, "w1", pass2_gemini_tpm=60_000)  # 1,000 tokens a second
    await gate.start()
    grant = await gate.admit("gemini", text_of(2000))
    statements.others.clear()
    await gate.succeeded(grant, 1000)  # the provider counted half the estimate
    assert statements.permits == [(2000, 0)] and statements.others == []
    row = await gate.db(provider_state.permit, "gemini", 2000, -1000, 20.0, HEADROOM, 0.0, "w1", 60.0)
    assert row["wait_s"] == pytest.approx(1000 / 1000 / HEADROOM, abs=0.1)
    await gate.admit("gemini", text_of(10))
    assert statements.permits[-1] == (10, -1000), "the next permit charged the correction"


async def test_token_corrections_reach_the_shared_budget_through_the_refresh_loop(pool: asyncpg.Pool) -> None:
    one, statements = gate_for(pool, "w1", pass2_gemini_tpm=60_000)
    await one.start()
    await one.succeeded(await one.admit("gemini", text_of(2000)), 5000)  # 3,000 more than estimated
    await one.flush()  # what the refresh loop does every REFRESH_S
    assert statements.permits[-1] == (None, 3000)
    # Another worker's next call waits for all 5,000 tokens to pass.
    row = await provider_state.permit(pool, "gemini", 1, 0, 20.0, HEADROOM, 0.0, "w2", 60.0)
    assert row["wait_s"] == pytest.approx(5000 / 1000 / HEADROOM, abs=0.1)


async def test_a_failed_permit_statement_fails_its_call_and_keeps_the_correction(pool: asyncpg.Pool) -> None:
    gate, statements = gate_for(pool, "w1", pass2_gemini_tpm=60_000)
    await gate.start()
    await gate.succeeded(await gate.admit("gemini", text_of(2000)), 1000)
    statements.fail_next = True
    with pytest.raises(asyncpg.PostgresConnectionError):
        await gate.admit("gemini", text_of(10))
    await gate.flush()
    assert statements.permits == [(2000, 0), (None, -1000)], (
        "the lost statement's correction was charged later"
    )


async def test_a_gated_worker_pays_one_permit_statement_per_gated_call(
    db_url: str, provider_settings: Settings, crops: FakeServer, conn: asyncpg.Connection, watcher: RowWatcher
) -> None:
    _, page = await make_page(conn)
    settings = worker_settings(provider_settings, db_url, pass2_gemini_rpm=60_000, pass2_voyage_tpm=10**7)
    async with running_worker(settings, worker_id="gated") as worker:
        await insert_pointers(conn, page, 12)
        assert set((await watcher.until_final(12, timeout=30)).values()) == {"complete"}
        assert worker.admission.permits == {"gemini": 12, "voyage": 12}
    states = await read_states(conn)
    assert states["gemini"].admitted_total == 12 and states["voyage"].admitted_total == 12
    assert crops.gemini.calls == 12
