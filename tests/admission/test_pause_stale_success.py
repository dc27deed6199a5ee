"""A pause is lifted by a call admitted during it (the fleet's probe), never by a call that was
already in flight when the pause began: that answer says nothing about the provider now.

Found by the soak's outage phase (tests/support/soak_phases.py): with Gemini down, a call admitted
just before the pause answered after it, lifted the pause, and the whole fleet resumed
claiming into the outage, spending attempts, until five more failures paused it again."""

from __future__ import annotations

from typing import Any

import asyncpg

from pgqueue_enricher.admission import gate as admission
from pgqueue_enricher.admission.gate import Admission, read_states
from pgqueue_enricher.errors import PermanentFailure, TransientFailure
from pgqueue_enricher.settings import load_settings


def admission_for(pool: asyncpg.Pool, worker_id: str) -> Admission:
    async def db(operation: Any, *args: Any, attempts: int = 1) -> Any:
        return await operation(pool, *args)

    return Admission(load_settings(_env_file=None, pass2_probe_base=30), worker_id, db)


async def pause_by_outages(gate: Admission) -> None:
    for _ in range(admission.OUTAGE_THRESHOLD):
        down = TransientFailure("gemini_unavailable", "503", scope="outage", provider="gemini")
        await gate.failed(await gate.admit("gemini", "prompt"), down)
    assert gate.paused(), "the fleet paused"


async def test_a_call_in_flight_since_before_the_pause_does_not_lift_it(pool: asyncpg.Pool) -> None:
    one, two = admission_for(pool, "w1"), admission_for(pool, "w2")
    await one.start()
    await two.start()
    in_flight = await one.admit("gemini", "prompt")  # admitted before the outage
    await pause_by_outages(two)
    await one.refresh()
    await one.succeeded(in_flight, 1000)  # ... and answered after the fleet paused
    state = (await read_states(pool))["gemini"]
    assert state.paused and state.paused_kind == "gemini_unavailable"
    assert one.paused(), "the worker's own view stays paused too"
    assert one.claimable(3, 0) == 0


async def test_an_in_flight_row_failure_after_the_pause_does_not_lift_it(pool: asyncpg.Pool) -> None:
    one, two = admission_for(pool, "w1"), admission_for(pool, "w2")
    await one.start()
    await two.start()
    in_flight = await one.admit("gemini", "prompt")
    await pause_by_outages(two)
    await one.refresh()
    blocked = PermanentFailure("safety", "Gemini stopped the answer for safety")  # the row's own fault
    await one.failed(in_flight, blocked)
    assert (await read_states(pool))["gemini"].paused


async def test_the_probe_admitted_during_the_pause_lifts_it(pool: asyncpg.Pool) -> None:
    one = admission_for(pool, "w1")
    await one.start()
    await pause_by_outages(one)
    await pool.execute(
        "UPDATE pgqueue_enricher_provider_state SET next_probe_at = now() WHERE provider = 'gemini'"
    )
    await one.refresh()
    assert one.claimable(3, 0) == 1
    await one.succeeded(await one.admit("gemini", "prompt"), 1000)
    assert not (await read_states(pool))["gemini"].paused
    assert not one.paused()


async def test_a_call_in_flight_since_before_the_resume_fails_without_counting_toward_a_new_pause(
    pool: asyncpg.Pool,
) -> None:
    one, two = admission_for(pool, "w1"), admission_for(pool, "w2")
    await one.start()
    await two.start()
    stale = await one.admit("gemini", "prompt")
    await pause_by_outages(two)
    await pool.execute(
        "UPDATE pgqueue_enricher_provider_state SET next_probe_at = now() WHERE provider = 'gemini'"
    )
    await one.refresh()
    # A call of `one` let go before the pause lifted (in flight through the outage); then
    # `one` takes the probe, and the probe's call succeeds and lifts the pause.
    assert one.claimable(3, 0) == 1
    probe = await one.admit("gemini", "prompt")
    assert probe.probe
    await one.succeeded(probe, 1000)
    assert not (await read_states(pool))["gemini"].paused
    # The call let go before the resume times out now: stale, not counted.
    timeout = TransientFailure("timeout", "no answer within 120 s", scope="outage", provider="gemini")
    await one.failed(stale, timeout)
    assert (await read_states(pool))["gemini"].consecutive_failures == 0
    assert timeout.gives_attempt_back, "the outage's fault, not the row's"
    # A call let go after the resume does count.
    fresh = await one.admit("gemini", "prompt")
    await one.failed(fresh, TransientFailure("timeout", "no answer", scope="outage", provider="gemini"))
    assert (await read_states(pool))["gemini"].consecutive_failures == 1
