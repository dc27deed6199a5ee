"""Claim latency at production scale: the fair, laned claim versus the FIFO claim it replaced.

The table holds 1,000,000 complete rows and 100,000 pending ones over 200 projects (both
lanes), built in SQL (tests/support/helpers.py seed_large_queue). Each sample claims N rows inside
a transaction and rolls it back, so every sample sees the same queue; the two statements
alternate so that load on the machine hits both alike. Prints the median and p90 per
batch size and the ratio fair / FIFO (target <= 2).

    .venv/bin/python bench/claim_latency.py [--samples 300] [--limits 1 4 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import migrated_database  # noqa: E402
from pgqueue_enricher.schema.sqlfiles import query  # noqa: E402
from tests.support.helpers import seed_large_queue  # noqa: E402

FIFO_CLAIM = (Path(__file__).resolve().parent / "claim_fifo.sql").read_text(encoding="utf-8")


async def sample(conn: asyncpg.Connection, statement: str, limit: int) -> float:
    transaction = conn.transaction()
    await transaction.start()
    try:
        started = time.perf_counter()
        rows = await conn.fetch(statement, limit, "bench", 60.0)
        elapsed = time.perf_counter() - started
    finally:
        await transaction.rollback()
    if len(rows) != limit:
        raise RuntimeError(f"claimed {len(rows)} of {limit} rows")
    return elapsed * 1000


async def measure(url: str, samples: int, limits: list[int]) -> list[tuple[int, list[float], list[float]]]:
    conn = await asyncpg.connect(url, statement_cache_size=0)
    try:
        started = time.perf_counter()
        await seed_large_queue(conn)
        print(
            f"seeded 1,000,000 complete + 100,000 pending rows over 200 projects in {time.perf_counter() - started:.0f}s"
        )
        fair_claim = query("pointers_claim")
        results = []
        for limit in limits:
            fifo: list[float] = []
            fair: list[float] = []
            for _ in range(10):  # warm the caches for both
                await sample(conn, FIFO_CLAIM, limit)
                await sample(conn, fair_claim, limit)
            for _ in range(samples):
                fifo.append(await sample(conn, FIFO_CLAIM, limit))
                fair.append(await sample(conn, fair_claim, limit))
            results.append((limit, fifo, fair))
        return results
    finally:
        await conn.close()


def p90(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.9)]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--limits", type=int, nargs="+", default=[1, 4, 32])
    args = parser.parse_args()
    with migrated_database("pgqe_bench_claim_latency") as url:
        results = asyncio.run(measure(url, args.samples, args.limits))
    print(
        f"{'rows':>4} {'FIFO median ms':>14} {'fair median ms':>14} {'FIFO p90':>9} {'fair p90':>9} {'ratio':>6}"
    )
    worst = 0.0
    for limit, fifo, fair in results:
        ratio = statistics.median(fair) / statistics.median(fifo)
        worst = max(worst, ratio)
        print(
            f"{limit:>4} {statistics.median(fifo):>14.2f} {statistics.median(fair):>14.2f} "
            f"{p90(fifo):>9.2f} {p90(fair):>9.2f} {ratio:>6.2f}"
        )
    print(f"median ratio fair / FIFO, worst: {worst:.2f} (target <= 2.00)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
