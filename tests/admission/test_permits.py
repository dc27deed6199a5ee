"""Coalesced permits: the calls of one worker that ask while its permit statement runs share the
next one, get the slots one statement each would give them, and their token corrections still
reach the fleet's budget, on a real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from pgqueue_enricher.admission import gate as admission
from pgqueue_enricher.admission import provider_state
from pgqueue_enricher.admission.gate import HEADROOM, Admission, read_states
from pgqueue_enricher.errors import TransientFailure
from pgqueue_enricher.settings import load_settings


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=6)
    try:
        yield pool
    finally:
        await pool.close()


class Statements:
    """One Admission's executor: notes every statement it runs, and can hold the next permit
    statement until released or fail it as a lost connection would."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.batches: list[list[int]] = []  # the calls of each permit statement, by their tokens
        self.corrections: list[int] = []  # the correction each permit statement charged
        self.others: list[str] = []  # every other statement, by its helper's name
        self.holding = asyncio.Event()
        self.flushed = asyncio.Event()  # a permit statement with no calls (a flush) has run
        self._release: asyncio.Event | None = None
        self._fail_next = False

    def hold_next(self) -> asyncio.Event:
        """Hold the next permit statement before it runs; set the returned event to let it go."""
        self._release = asyncio.Event()
        self.holding.clear()
        return self._release

    def fail_next(self) -> None:
        self._fail_next = True

    async def __call__(self, operation: Any, *args: Any, attempts: int = 1) -> Any:
        if operation is not provider_state.acquire_batch:
            self.others.append(operation.__name__)
            return await operation(self.pool, *args)
        tokens, correction = args[1], args[5]
        if self._release is not None:
            release, self._release = self._release, None
            self.holding.set()
            await release.wait()
        if self._fail_next:
            self._fail_next = False
            raise asyncpg.PostgresConnectionError("the connection was lost")
        result = await operation(self.pool, *args)
        self.batches.append(list(tokens))
        self.corrections.append(correction)
        if not tokens:
            self.flushed.set()
        return result


def gate_for(pool: asyncpg.Pool, worker_id: str, **settings: Any) -> tuple[Admission, Statements]:
    statements = Statements(pool)
    return Admission(load_settings(_env_file=None, **settings), worker_id, statements), statements


async def queued(gate: Admission, provider: str, count: int) -> None:
    """Let the tasks just created ask: one pass of the loop runs each to its first real await,
    which is the wait for the next permit statement; then `count` calls must be queued."""
    await asyncio.sleep(0)
    assert len(gate.permits[provider]._flight._queue) == count


async def test_calls_that_ask_while_a_permit_statement_runs_share_the_next_one(pool: asyncpg.Pool) -> None:
    gate, statements = gate_for(pool, "w1", pass2_gemini_rpm=6000)
    await gate.start()
    release = statements.hold_next()
    first = asyncio.create_task(gate.admit("gemini", 1000))
    await statements.holding.wait()  # the first call's statement is in flight ...
    later = [asyncio.create_task(gate.admit("gemini", 1001 + n)) for n in range(5)]
    await queued(gate, "gemini", 5)  # ... while five more calls ask
    assert not any(task.done() for task in later)
    release.set()
    permits = [await first, *[await task for task in later]]
    assert statements.batches == [[1000], [1001, 1002, 1003, 1004, 1005]]
    assert (gate.permits["gemini"].statements, gate.permits["gemini"].permits) == (2, 6)
    # Each call has its own slot, in the order they asked, one request's share apart.
    slots = [permit.slot for permit in permits]
    assert all(isinstance(slot, datetime) for slot in slots), slots
    spacing = 60 / (6000 * HEADROOM)
    gaps = [(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)]  # type: ignore[operator]
    # The second statement starts the schedule anew if it runs after the first slot's share has
    # passed (then the gap is wider); within it, the calls are one share apart.
    assert gaps[0] >= spacing - 2e-6 and gaps[1:] == pytest.approx([spacing] * 4, abs=2e-6), gaps
    assert (await read_states(pool))["gemini"].admitted_total == 6


async def test_a_call_cancelled_before_its_batch_runs_reserves_nothing(pool: asyncpg.Pool) -> None:
    gate, statements = gate_for(pool, "w1", pass2_gemini_rpm=6000)
    await gate.start()
    release = statements.hold_next()
    first = asyncio.create_task(gate.admit("gemini", 1000))
    await statements.holding.wait()
    later = [asyncio.create_task(gate.admit("gemini", 2000 + n)) for n in range(3)]
    await queued(gate, "gemini", 3)
    later[1].cancel()
    release.set()
    await first
    await later[0]
    await later[2]
    assert later[1].cancelled()
    assert statements.batches == [[1000], [2000, 2002]]
    assert (await read_states(pool))["gemini"].admitted_total == 3


@pytest.mark.parametrize("function", [True, False], ids=["function", "statement"])
async def test_a_batch_gets_the_slots_one_statement_per_call_would_give(
    pool: asyncpg.Pool, function: bool
) -> None:
    """The same calls on two rows set up alike: a batch on gemini, one statement each on voyage,
    through the function (0011) or the plain statement it keeps for older databases. The
    schedule starts in the future, so that the slots do not depend on the statements' now()."""
    start = datetime.now().astimezone() + timedelta(hours=1)
    await pool.execute(
        "UPDATE pgqueue_enricher_provider_state SET rpm_limit = 600, tpm_limit = 60000, admitted_rpm = 500,"
        " quota_rpm = 520, next_free_at = $1, tokens_free_at = $1::timestamptz - interval '1 second'",
        start,
    )
    tokens = [1000, 200, 3000, 50, 800, 1200, 10, 5000, 400, 700, 0, 90]
    increase, hold = 3.0, 1e9  # the adaptive rate meets the named quota within the batch
    batch = await provider_state.acquire_batch(
        pool, "gemini", tokens, hold, HEADROOM, increase, -300, function
    )
    await provider_state.acquire_batch(pool, "voyage", [], hold, HEADROOM, increase, -300, function)
    singles = [
        (await provider_state.acquire_batch(pool, "voyage", [t], hold, HEADROOM, increase, 0, function))[0]
        for t in tokens
    ]
    assert all(row["reserved"] for row in batch + singles)
    offsets = [(row["slot"] - start).total_seconds() for row in batch]
    assert offsets == pytest.approx([(row["slot"] - start).total_seconds() for row in singles], abs=1e-4)
    assert offsets == sorted(offsets) and offsets[-1] > 10, "tokens and requests both spaced the calls"
    rows = {
        row["provider"]: row
        for row in await pool.fetch(
            "SELECT provider, admitted_rpm, admitted_total, extract(epoch FROM next_free_at - $1)::float8 AS nf,"
            " extract(epoch FROM tokens_free_at - $1)::float8 AS tf FROM pgqueue_enricher_provider_state",
            start,
        )
    }
    gemini, voyage = rows["gemini"], rows["voyage"]
    assert gemini["admitted_rpm"] == pytest.approx(voyage["admitted_rpm"]) == pytest.approx(520)
    assert gemini["admitted_total"] == voyage["admitted_total"] == len(tokens)
    assert gemini["nf"] == pytest.approx(voyage["nf"], abs=1e-4)
    assert gemini["tf"] == pytest.approx(voyage["tf"], abs=1e-4)


async def test_a_batch_reserves_the_calls_within_the_hold_and_tells_the_rest_the_first_slot_left(
    pool: asyncpg.Pool,
) -> None:
    gate, statements = gate_for(pool, "w1", pass2_gemini_rpm=60)  # a call a second (at 97 %)
    await gate.start()
    release = statements.hold_next()
    first = asyncio.create_task(gate.permits["gemini"].reserve(10))
    await statements.holding.wait()
    later = [asyncio.create_task(gate.permits["gemini"].reserve(10)) for _ in range(24)]
    await queued(gate, "gemini", 24)
    release.set()
    grants = [await first, *[await task for task in later]]
    spacing = 60 / (60 * HEADROOM)
    reserved = [grant for grant in grants if grant.reserved]
    assert grants[: len(reserved)] == reserved, "the reserved calls are the first to ask"
    assert len(reserved) == int(admission.MAX_HOLD_S / spacing) + 1
    refused = grants[len(reserved) :]
    assert refused and all(grant.wait_s == refused[0].wait_s for grant in refused)
    assert refused[0].wait_s == pytest.approx(len(reserved) * spacing, abs=0.5)
    assert (await read_states(pool))["gemini"].admitted_total == len(reserved)
    # Through admit, a refused call is a wait for the first slot left, as before batching.
    failure = None
    try:
        await gate.admit("gemini", 10)
    except TransientFailure as exc:
        failure = exc
    assert failure is not None and (failure.scope, failure.kind) == ("wait", "gate_wait")
    assert failure.retry_after == pytest.approx(len(reserved) * spacing, abs=1.0)


async def test_slots_of_two_workers_batching_at_once_stay_in_order_and_within_the_rate(
    pool: asyncpg.Pool,
) -> None:
    one, one_statements = gate_for(pool, "w1", pass2_gemini_rpm=6000)
    two, two_statements = gate_for(pool, "w2", pass2_gemini_rpm=6000)
    await one.start()
    await two.start()
    calls = [(gate, n) for n in range(8) for gate in (one, two)]
    permits = await asyncio.gather(*(gate.admit("gemini", 500 + n) for gate, n in calls))
    assert len(one_statements.batches) + len(two_statements.batches) < len(calls), (
        "no call shared a statement"
    )
    slots = sorted(permit.slot for permit in permits)  # type: ignore[type-var]
    assert len(set(slots)) == len(calls), "two calls got the same slot"
    spacing = 60 / (6000 * HEADROOM)
    gaps = [(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)]
    assert min(gaps) >= spacing - 2e-6, gaps  # never two calls closer than the rate allows
    # Each worker's calls got their slots in the order they asked.
    for gate in (one, two):
        mine = [permit.slot for permit, (owner, _) in zip(permits, calls, strict=True) if owner is gate]
        assert mine == sorted(mine)  # type: ignore[type-var]
    state = await pool.fetchrow(
        "SELECT admitted_total, next_free_at FROM pgqueue_enricher_provider_state WHERE provider = 'gemini'"
    )
    assert state["admitted_total"] == len(calls)
    assert (state["next_free_at"] - slots[-1]).total_seconds() == pytest.approx(spacing, abs=2e-6)


async def test_token_corrections_cost_no_statement_and_ride_with_the_next_permit(pool: asyncpg.Pool) -> None:
    gate, statements = gate_for(pool, "w1", pass2_gemini_tpm=60_000)  # 1,000 tokens a second
    await gate.start()
    permit = await gate.admit("gemini", 2000)
    await gate.succeeded(permit, 1000)  # the provider counted half the estimate
    assert statements.batches == [[2000]] and statements.others == [
        "configure",
        "configure",
        "read_states",
        "permit_function_callable",
    ]
    grant = await gate.permits["gemini"].reserve(2000)
    assert statements.batches == [[2000], [2000]] and statements.corrections == [0, -1000]
    assert grant.wait_s == pytest.approx(1000 / 1000 / HEADROOM, abs=0.1)


async def test_token_corrections_reach_the_shared_budget_through_the_refresh_loop(pool: asyncpg.Pool) -> None:
    one, statements = gate_for(pool, "w1", pass2_gemini_tpm=60_000)
    two, _ = gate_for(pool, "w2", pass2_gemini_tpm=60_000)
    await one.start()
    await two.start()
    permit = await one.admit("gemini", 2000)
    await one.succeeded(permit, 5000)  # 3,000 tokens more than estimated
    closing = asyncio.Event()
    refreshing = asyncio.create_task(one.run(closing))
    try:
        await asyncio.wait_for(statements.flushed.wait(), 10)
    finally:
        closing.set()
        await refreshing
    assert statements.corrections[-1] == 3000
    # The other worker's next call waits for all 5,000 tokens to pass.
    grant = await two.permits["gemini"].reserve(0)
    assert grant.slot is not None and permit.slot is not None
    assert (grant.slot - permit.slot).total_seconds() == pytest.approx(5000 / 1000 / HEADROOM, abs=1e-3)


async def test_a_failed_permit_statement_fails_its_calls_and_keeps_the_correction(pool: asyncpg.Pool) -> None:
    gate, statements = gate_for(pool, "w1", pass2_gemini_tpm=60_000)
    await gate.start()
    await gate.succeeded(await gate.admit("gemini", 2000), 1000)
    statements.fail_next()
    calls = await asyncio.gather(*(gate.admit("gemini", 10) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(call, asyncpg.PostgresConnectionError) for call in calls), calls
    await gate.flush()
    assert statements.corrections == [0, -1000], "the lost statement's correction was charged later"


async def test_successes_that_come_together_after_failures_cost_one_statement(pool: asyncpg.Pool) -> None:
    gate, statements = gate_for(pool, "w1")
    await gate.start()
    down = TransientFailure("gemini_unavailable", "503", scope="outage", provider="gemini")
    await gate.failed(await gate.admit("gemini", 1000), down)
    assert (await read_states(pool))["gemini"].consecutive_failures == 1
    permits = [await gate.admit("gemini", 1000) for _ in range(6)]
    statements.others.clear()
    await asyncio.gather(*(gate.succeeded(permit, 1000) for permit in permits))
    assert statements.others == ["succeed"]
    assert (await read_states(pool))["gemini"].consecutive_failures == 0


async def test_a_permit_statement_commits_without_waiting_for_the_flush_and_leaves_the_session_as_it_was(
    db_url: str,
) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        lagging = 0
        for _ in range(20):
            await provider_state.acquire_batch(conn, "gemini", [1000], 20.0, HEADROOM, 0.0, 0)
            # Right after an asynchronous commit the WAL is written past what has been flushed.
            lag = await conn.fetchval("SELECT pg_current_wal_insert_lsn() - pg_current_wal_flush_lsn()")
            lagging += lag > 0
        assert lagging > 0, "every permit statement waited for the WAL flush"
        # The setting was the statement's own transaction's: the connection's next writes (a
        # pooled connection's write-backs) commit synchronously as before.
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await conn.close()


async def test_the_function_and_the_statement_for_older_databases_give_the_same_permits(
    pool: asyncpg.Pool,
) -> None:
    start = datetime.now().astimezone() + timedelta(minutes=10)
    await pool.execute(
        "UPDATE pgqueue_enricher_provider_state SET rpm_limit = 300, tpm_limit = 90000, admitted_rpm = 250,"
        " quota_rpm = NULL, next_free_at = $1, tokens_free_at = $1",
        start,
    )
    tokens = [1200, 40, 3000, 700, 0, 1500, 20, 900]
    # The schedule is 10 minutes out: with a 20 s hold every call is refused, with none reserved.
    for hold in (20.0, 1e9):
        rows = []
        for provider, function in (("gemini", True), ("voyage", False)):
            found = await provider_state.acquire_batch(
                pool, provider, tokens, hold, HEADROOM, 4.0, 250, function
            )
            rows.append([(r["n"], r["slot"] - start, r["reserved"], r["paused"], r["epoch"]) for r in found])
        assert rows[0] == rows[1] and len(rows[0]) == len(tokens)
        assert {reserved for _, _, reserved, _, _ in rows[0]} == {hold > 20}
    states = await pool.fetch(
        "SELECT admitted_rpm, admitted_total, next_free_at - $1 AS nf, tokens_free_at - $1 AS tf"
        " FROM pgqueue_enricher_provider_state ORDER BY provider",
        start,
    )
    assert dict(states[0]) == dict(states[1])


# One call's states for the function's own path for a single call (revision 0012): limits,
# learnt rate and named quota in every combination the gate writes, and a pause.
SINGLE_CALL_STATES = {
    "requests limit": (300.0, None, None, None, False),
    "both limits and a learnt rate": (300.0, 90_000.0, 250.0, None, False),
    "learnt rate near its named quota": (None, None, 598.0, 600.0, False),
    "named quota and no learnt rate": (None, None, None, 600.0, False),
    "tokens limit alone": (None, 90_000.0, None, None, False),
    "no limit": (None, None, None, None, False),
    "paused": (300.0, 90_000.0, None, None, True),
}


@pytest.mark.parametrize("state", SINGLE_CALL_STATES, ids=list(SINGLE_CALL_STATES))
async def test_the_function_s_path_for_one_call_gives_what_the_batch_statement_gives_one_call(
    pool: asyncpg.Pool, state: str
) -> None:
    """The same state on both rows, the function on one and the batch statement on the other,
    in one transaction (one now()): the same grant and the same schedule after it, with the
    schedule behind now or ahead of it, a hold that reserves or refuses, and a correction."""
    rpm, tpm, admitted, quota, paused = SINGLE_CALL_STATES[state]
    async with pool.acquire() as conn:
        for offset_s in (-60.0, 600.0):
            for hold in (20.0, 1e9):
                for correction in (0, 250, -4000):
                    case = (state, offset_s, hold, correction)
                    rolled_back = conn.transaction()
                    await rolled_back.start()
                    try:
                        await conn.execute(
                            "UPDATE pgqueue_enricher_provider_state SET rpm_limit = $1, tpm_limit = $2,"
                            " admitted_rpm = $3, quota_rpm = $4, throttle_epoch = 7,"
                            " paused_since = CASE WHEN $5 THEN now() END,"
                            " next_free_at = now() + make_interval(secs => $6),"
                            " tokens_free_at = now() + make_interval(secs => $6 + 2)",
                            rpm,
                            tpm,
                            admitted,
                            quota,
                            paused,
                            offset_s,
                        )
                        args = ([1500], hold, HEADROOM, 4.0, correction)
                        ours = await provider_state.acquire_batch(conn, "gemini", *args, True)
                        batch = await provider_state.acquire_batch(conn, "voyage", *args, False)
                        assert len(ours) == 1 and [dict(r) for r in ours] == [dict(r) for r in batch], case
                        after = await conn.fetch(
                            "SELECT admitted_rpm, admitted_total, next_free_at, tokens_free_at"
                            " FROM pgqueue_enricher_provider_state ORDER BY provider"
                        )
                        assert dict(after[0]) == dict(after[1]), case
                    finally:
                        await rolled_back.rollback()


async def test_a_worker_draws_its_permits_through_the_function_when_it_may(pool: asyncpg.Pool) -> None:
    gate, _ = gate_for(pool, "w1", pass2_gemini_rpm=6000)
    await gate.start()
    assert gate.permit_function
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE ROLE pgqe_no_function NOINHERIT; GRANT ALL ON pgqueue_enricher_provider_state TO pgqe_no_function;"
            " REVOKE ALL ON FUNCTION pgqueue_enricher_acquire_permits(text, double precision[], double precision,"
            " double precision, double precision, double precision) FROM PUBLIC"
        )
        try:
            await conn.execute("SET ROLE pgqe_no_function")
            assert not await provider_state.permit_function_callable(conn)
        finally:
            await conn.execute("RESET ROLE; DROP OWNED BY pgqe_no_function; DROP ROLE pgqe_no_function")


async def test_a_worker_whose_function_went_away_draws_its_permits_with_the_statement(
    pool: asyncpg.Pool,
) -> None:
    gate, statements = gate_for(pool, "w1", pass2_gemini_rpm=6000)
    await gate.start()
    assert gate.permit_function
    await pool.execute(
        "DROP FUNCTION pgqueue_enricher_acquire_permits(text, double precision[], double precision,"
        " double precision, double precision, double precision)"
    )
    permit = await gate.admit("gemini", 1000)
    assert permit.slot is not None and not gate.permit_function
    assert statements.batches == [[1000]], "the refused function call is not counted, the statement is"
    assert (await read_states(pool))["gemini"].admitted_total == 1
