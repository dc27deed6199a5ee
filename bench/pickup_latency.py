"""Pickup latency: from an INSERT's commit in another process to the worker holding the row.

An idle in-process worker (instant providers, 30 s poll interval, so only the doorbell can
wake it in time) waits while a separate process inserts 500 pointers, one per statement, at
50 per second, noting the wall-clock time right after each commit returns. The worker side
notes the time its describer is first called for the pointer, which is after the claim has
returned, so the figure is commit → claimed → work started. Both clocks are this machine's.
Prints p50, p90, p99 and max in milliseconds.

    .venv/bin/python bench/pickup_latency.py [--pointers 500] [--rate 50] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (  # noqa: E402
    InstantDescriber,
    bench_settings,
    instant_providers,
    migrated_database,
    seed_pointers,
)
from pgqueue_enricher.providers.types import EnrichmentInput, EnrichmentOutput  # noqa: E402
from pgqueue_enricher.queue.worker import Worker  # noqa: E402


class StampingDescriber(InstantDescriber):
    """Notes when work on each pointer starts, keyed by its title."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.all_started = asyncio.Event()
        self.expected = 0

    async def describe(self, item: EnrichmentInput) -> EnrichmentOutput:
        self.started.setdefault(item.pointer_title, time.time())
        if len(self.started) >= self.expected:
            self.all_started.set()
        return await super().describe(item)


def insert_at_rate(url: str, page: str, count: int, rate: float) -> None:
    """The other process: one INSERT per statement on a fixed schedule; prints commit times."""
    committed: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.monotonic()
        for n in range(count):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            title = f"Pickup {n}"
            conn.execute(
                "INSERT INTO pointers (page_id, title, png_path) VALUES (%s, %s, 'crops/x.png')",
                (page, title),
            )
            committed[title] = time.time()
    print(json.dumps(committed))


async def measure(url: str, count: int, rate: float) -> list[float]:
    page = await seed_pointers(url, 0)
    describer = StampingDescriber()
    describer.expected = count
    settings = bench_settings(url, pass2_poll_interval=30.0, pass2_max_concurrent=8)
    stop = asyncio.Event()
    worker = Worker(settings, providers=instant_providers(describer), stop_event=stop, worker_id="pickup")
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.listener.ready.wait(), 30)
    inserter = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--insert-into",
        url,
        str(page),
        "--pointers",
        str(count),
        "--rate",
        str(rate),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await inserter.communicate()
    if inserter.returncode != 0:
        raise RuntimeError(f"the inserting process exited {inserter.returncode}")
    committed: dict[str, float] = json.loads(output)
    await asyncio.wait_for(describer.all_started.wait(), 60)
    stop.set()
    await task
    return sorted((describer.started[title] - at) * 1000 for title, at in committed.items())


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pointers", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="inserts per second")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="runs back to back, each with a fresh worker (median p99 judged)",
    )
    parser.add_argument("--insert-into", nargs=2, metavar=("URL", "PAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.insert_into:
        insert_at_rate(*args.insert_into, args.pointers, args.rate)
        return 0
    from pgqueue_enricher.logs import configure_logging

    configure_logging("console", "WARNING")
    with migrated_database("pgqe_bench_pickup") as url:
        runs = [asyncio.run(measure(url, args.pointers, args.rate)) for _ in range(args.rounds)]
    print(
        f"{args.pointers} inserts at {args.rate:.0f}/s from another process, idle worker, 30 s poll interval"
    )
    for latencies in runs:
        print(
            f"commit -> claimed, ms: p50 {percentile(latencies, 0.5):.2f}  p90 {percentile(latencies, 0.9):.2f}  "
            f"p99 {percentile(latencies, 0.99):.2f}  max {latencies[-1]:.2f}  mean {statistics.fmean(latencies):.2f}"
        )
    if len(runs) > 1:
        # The p99 of 500 inserts is their fifth slowest: one hiccup of this shared VM moves it.
        p50 = statistics.median(percentile(latencies, 0.5) for latencies in runs)
        p99 = statistics.median(percentile(latencies, 0.99) for latencies in runs)
        print(f"median of {len(runs)} runs: p50 {p50:.2f}  p99 {p99:.2f}")
    print("targets: p50 <= 3 ms, p99 <= 6 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
