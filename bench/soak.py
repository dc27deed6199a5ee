"""`make soak`: the long soak run (tests/support/soak_engine.py) from the command line, on a fresh database.

5,000 pointers by default, three worker processes, provider faults, SIGKILLs and
pg_terminate_backend for the first 180 s, and within them a quota phase (the fake accepts 4
Gemini calls/s for 20 s; the workers are not told) and an outage phase (Gemini answers 503
for 8 s after the fleet paused); the invariants it judges are listed in tests/support/soak_engine.py.

    .venv/bin/python bench/soak.py [--pointers 5000] [--max-seconds 480] [--kill-every 3] [--seed 1]

Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import migrated_database  # noqa: E402
from tests.support.soak_engine import SoakConfig, SoakReport, run_soak  # noqa: E402


def parse_args(argv: list[str] | None = None) -> SoakConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pointers", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=480.0)
    parser.add_argument("--chaos-seconds", type=float, default=180.0, help="how long the faults go on")
    parser.add_argument("--kill-every", type=float, default=3.0, help="mean seconds between SIGKILLs")
    parser.add_argument(
        "--terminate-every", type=float, default=8.0, help="mean seconds between terminations"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per Gemini call")
    parser.add_argument("--quota-calls", type=int, default=4, help="Gemini calls/s in the quota phase")
    parser.add_argument("--quota-seconds", type=float, default=20.0, help="length of the quota phase")
    parser.add_argument(
        "--outage-seconds", type=float, default=8.0, help="how long Gemini stays down after the fleet paused"
    )
    parser.add_argument("--log-dir", type=Path, default=None, help="keep worker logs here")
    args = parser.parse_args(argv)
    return SoakConfig(
        pointers=args.pointers,
        workers=args.workers,
        concurrency=args.concurrency,
        max_seconds=args.max_seconds,
        chaos_seconds=args.chaos_seconds,
        kill_every=args.kill_every,
        terminate_every=args.terminate_every,
        seed=args.seed,
        gemini_latency=args.latency,
        quota_calls=args.quota_calls,
        quota_seconds=args.quota_seconds,
        outage_seconds=args.outage_seconds,
        log_dir=args.log_dir,
    )


async def _main(config: SoakConfig, database_url: str) -> SoakReport:
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM to the soak stops it like Ctrl-C: every child is stopped on the way out.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run_soak(config, database_url)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    with migrated_database(f"pgqe_soak_{os.getpid()}") as url:
        try:
            report = asyncio.run(_main(config, url))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("soak interrupted; every process it started was stopped", file=sys.stderr)
            return 130
    print(report.render())
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
