"""The soak (tests/support/soak_engine.py) in short: 100 pointers, three worker processes, provider faults,
three SIGKILLs, two rounds of pg_terminate_backend, a Gemini quota the workers are not told about
and a Gemini outage (tests/support/soak_phases.py), with the same invariants as `make soak`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.soak_engine import SoakConfig, run_soak


@pytest.mark.slow
@pytest.mark.alone  # three worker processes and a fake under chaos: it gets the machine to itself
async def test_a_short_soak_loses_nothing_and_writes_every_result_once(db_url: str, tmp_path: Path) -> None:
    config = SoakConfig(
        pointers=100,
        max_seconds=120,  # a ceiling for an overloaded machine (make test -n 2: workers took 14 s to start)
        kill_every=1.0,
        max_kills=3,
        kill_after_up=False,  # three kills at once, as before: the run may end before a slow restart
        terminate_every=1.5,
        max_terminations=2,
        gemini_latency=0.3,  # stretches the run so that the faults land while work is in flight
        retry_delay="1s",  # the random 429s' RetryInfo: the slowest rows set the run's length
        seed=7,
        # The phases: 3 Gemini calls/s (the fleet makes about 10) for 2 s once 10 % of the rows
        # are final; Gemini down once 35 %, for 1 s after the fleet paused; a probe every 0.5 s.
        quota_calls=3,
        quota_window=1.0,
        quota_at=0.10,
        quota_seconds=2.0,
        outage_at=0.35,
        outage_seconds=1.0,
        probe_base=0.5,
        probe_max=0.5,
        phase_timeout=20.0,
        log_dir=tmp_path,
        progress=False,
    )
    report = await run_soak(config, db_url)
    print(report.render())  # the figures, with pytest -s
    assert report.passed, report.render()
    # The same invariants, spelled out.
    assert report.lost == 0 and report.processing == 0, report.render()
    assert report.statuses.get("complete", 0) + report.statuses.get("failed", 0) == 100
    assert report.multi_written == 0, "a pointer's result was written twice"
    assert report.attempts_over_max == 0, "a pointer spent more than PASS2_MAX_ATTEMPTS attempts"
    assert report.complete_without_ok_call == 0
    assert report.second_ok_explained == report.second_ok_calls, (
        "a second successful Gemini call without a lost attempt"
    )
    assert report.failed_without_reason == 0 and report.failed_unexplained == 0
    assert report.failed_by_phase == 0, "a row failed because of the quota or the outage"
    assert report.kills == 3 and report.terminations == 2 and report.backends_terminated > 0
    assert report.exit_codes == [0, 0, 0]
    assert report.gemini["outcomes"].get("safety", 0) >= report.failed_safety
    # Each phase took effect: refusals the fleet learnt the quota from; one pause, lifted by a
    # probe once the fake was back.
    assert report.quota.refused > 0 and report.quota.named_rpm == 180, report.quota.line()
    assert report.outage.refused > 0 and report.outage.pauses == 1, report.outage.line()
    assert report.outage.resumed_by_probe and not report.outage.still_paused, report.outage.line()
