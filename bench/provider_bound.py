"""Provider-bound throughput: does the worker keep every slot busy while calls are slow?

The worker runs the real google-genai, voyageai and httpx clients against the fake
Gemini/Voyage/Storage server on 127.0.0.1. Each pointer's Gemini call takes a latency drawn
in advance from a log-normal distribution with a mean of 2 s (sigma 0.5), so the ideal is
known: with C slots, throughput = C / mean latency. Two figures per concurrency:

- busy ratio: while there was a backlog (from the first Gemini call to the last one
  started), the share of C slots that had a Gemini call open. This is throughput ÷
  (C / mean latency) without the end of the run, where slots go idle because the queue
  is empty, not because of the worker;
- whole-run ratio: pointers/s over the whole drain ÷ (C / mean of the drawn latencies),
  which also pays for that tail.

    .venv/bin/python bench/provider_bound.py [--concurrency 3 16] [--seconds 40] [--seed 5]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from pathlib import Path

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import bench_settings, migrated_database, seed_pointers  # noqa: E402
from pgqueue_enricher.queue.worker import Worker  # noqa: E402
from tests.fakes.server import FakeServer, tiny_png  # noqa: E402

MEAN_S = 2.0
SIGMA = 0.5


def lognormal_latencies(count: int, rng: random.Random) -> list[float]:
    mu = math.log(MEAN_S) - SIGMA**2 / 2  # so that the distribution's mean is MEAN_S
    return [rng.lognormvariate(mu, SIGMA) for _ in range(count)]


def busy_ratio(calls: list[tuple[float, float]], concurrency: int) -> float:
    """Slot occupancy between the first call's start and the last call's start."""
    window_start = min(start for start, _ in calls)
    window_end = max(start for start, _ in calls)
    busy = sum(max(0.0, min(end, window_end) - max(start, window_start)) for start, end in calls)
    return busy / (concurrency * (window_end - window_start))


async def run(
    url: str, fake: FakeServer, concurrency: int, seconds: float, seed: int
) -> tuple[float, float, int]:
    count = round(concurrency * seconds / MEAN_S)
    latencies = lognormal_latencies(count, random.Random(seed))
    fake.reset()
    fake.storage.put("crops/x.png", tiny_png())
    fake.gemini.slow_titles = {f"Detail {n + 1}": latency for n, latency in enumerate(latencies)}
    await seed_pointers(url, count)
    base = fake.base_url
    settings = bench_settings(
        url,
        enricher_provider="gemini",
        gemini_api_key=SecretStr("bench-gemini-key"),
        gemini_base_url=base,
        voyage_api_key=SecretStr("bench-voyage-key"),
        voyage_base_url=base + "/v1",
        supabase_url=base,
        supabase_service_key=SecretStr("bench-service-key"),
        storage_bucket="project-files",
        storage_dir=None,
        pass2_max_concurrent=concurrency,
    )
    worker = Worker(settings, drain=True, worker_id=f"provider-bound-{concurrency}")
    start = time.perf_counter()
    await worker.run()
    elapsed = time.perf_counter() - start
    if worker.metrics.completions != count:
        raise RuntimeError(f"the worker completed {worker.metrics.completions} of {count} pointers")
    by_title = dict(zip(fake.gemini.slow_titles, latencies, strict=True))
    calls = [(r.at, r.at + by_title[r.title]) for r in fake.gemini.requests if r.title in by_title]
    whole_run = (count / elapsed) / (concurrency / (sum(latencies) / count))
    return busy_ratio(calls, concurrency), whole_run, count


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[3, 16])
    parser.add_argument("--seconds", type=float, default=40.0, help="about how long each run lasts")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    from pgqueue_enricher.logs import configure_logging

    configure_logging("console", "WARNING")
    results = []
    with FakeServer() as fake, migrated_database("pgqe_bench_provider_bound") as url:
        for concurrency in args.concurrency:
            results.append((concurrency, *asyncio.run(run(url, fake, concurrency, args.seconds, args.seed))))
    print(f"fake Gemini latency log-normal, mean {MEAN_S} s, sigma {SIGMA}; real SDKs over loopback HTTP")
    print(f"{'concurrency':>11} {'pointers':>8} {'busy ratio':>10} {'whole-run ratio':>15}")
    for concurrency, busy, whole, count in results:
        print(f"{concurrency:>11} {count:>8} {busy:>10.3f} {whole:>15.3f}")
    print("target: throughput / (concurrency / mean latency) >= 0.95")
    return 0


if __name__ == "__main__":
    sys.exit(main())
