"""Memory: the worker's resident set size while it drains 20,000 pointers.

The worker runs in a child process of its own (so that the migration tooling and the
embedded server's Python side that prepare the database are not counted), with instant
providers, at concurrency 32, logging at INFO into /dev/null (one line per claim and
completion, as in production). The SDKs a production daemon loads (google-genai, voyageai,
httpx) are imported first so that their footprint is counted. RSS is sampled as completions pass 10 %, 25 %, 50 % and 100 % of the
count; "not growing" means the figures after the first quarter stay within a few MB.

    .venv/bin/python bench/memory.py [--pointers 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import bench_settings, instant_providers, migrated_database, rss_mb, seed_pointers  # noqa: E402
from pgqueue_enricher.queue.worker import Worker  # noqa: E402


async def measure(url: str, count: int) -> list[tuple[int, float]]:
    settings = bench_settings(url, pass2_max_concurrent=32, log_level="INFO")
    worker = Worker(settings, providers=instant_providers(), drain=True, worker_id="memory")
    marks = [count // 10, count // 4, count // 2]
    samples: list[tuple[int, float]] = [(0, rss_mb())]  # before the pool and the first claim

    def on_progress(pending: int, processing: int) -> None:
        done = worker.metrics.completions
        while marks and done >= marks[0]:
            marks.pop(0)
            samples.append((done, rss_mb()))

    worker.on_progress = on_progress
    await worker.run()
    gc.collect()
    samples.append((worker.metrics.completions, rss_mb()))
    return samples


def run_worker(url: str, count: int) -> None:
    """The child: only what `pgqueue-enricher run` would load, then the drain."""
    import google.genai  # noqa: F401  - loaded by a production daemon
    import httpx  # noqa: F401
    import voyageai  # noqa: F401

    from pgqueue_enricher.logs import configure_logging

    with open(os.devnull, "w") as sink:
        configure_logging("json", "INFO", stream=sink)
        samples = asyncio.run(measure(url, count))
    print(json.dumps(samples))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pointers", type=int, default=20_000)
    parser.add_argument("--worker-on", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_on:
        run_worker(args.worker_on, args.pointers)
        return 0
    with migrated_database("pgqe_bench_memory") as url:
        asyncio.run(seed_pointers(url, args.pointers))
        child = subprocess.run(
            [sys.executable, __file__, "--worker-on", url, "--pointers", str(args.pointers)],
            stdout=subprocess.PIPE,
            check=True,
        )
    samples = json.loads(child.stdout)
    print(f"worker RSS while draining {args.pointers} pointers (own process, concurrency 32, INFO logs)")
    for done, rss in samples:
        print(f"  after {done:>6} completions: {rss:6.1f} MB")
    settled = [rss for done, rss in samples if done >= args.pointers // 4]
    print(f"final {samples[-1][1]:.1f} MB (target <= 150); growth after the first quarter: "
          f"{max(settled) - min(settled):+.1f} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
