"""The soak (tests/soak_engine.py) in short: 300 pointers, three worker processes, provider faults,
three SIGKILLs and two rounds of pg_terminate_backend, with the same invariants as `make soak`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak_engine import SoakConfig, run_soak


@pytest.mark.slow
async def test_a_short_soak_loses_nothing_and_writes_every_result_once(db_url: str, tmp_path: Path) -> None:
    config = SoakConfig(
        pointers=300,
        max_seconds=55,
        kill_every=1.0,
        max_kills=3,
        terminate_every=1.5,
        max_terminations=2,
        gemini_latency=0.5,  # stretches the run so that the faults land while work is in flight
        seed=7,
        log_dir=tmp_path,
        progress=False,
    )
    report = await run_soak(config, db_url)
    print(report.render())  # the figures, with pytest -s
    assert report.passed, report.render()
    # The same invariants, spelled out.
    assert report.lost == 0 and report.processing == 0, report.render()
    assert report.statuses.get("complete", 0) + report.statuses.get("failed", 0) == 300
    assert report.multi_written == 0, "a pointer's result was written twice"
    assert report.attempts_over_max == 0, "a pointer spent more than PASS2_MAX_ATTEMPTS attempts"
    assert report.complete_without_ok_call == 0
    assert report.second_ok_explained == report.second_ok_calls, (
        "a second successful Gemini call without a lost attempt"
    )
    assert report.failed_without_reason == 0 and report.failed_unexplained == 0
    assert report.kills == 3 and report.terminations == 2 and report.backends_terminated > 0
    assert report.exit_codes == [0, 0, 0]
    assert report.gemini["outcomes"].get("safety", 0) >= report.failed_safety
