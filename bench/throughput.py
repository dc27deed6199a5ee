"""Queue overhead: how close the worker gets to what the database alone allows.

Both sides drain the same number of pending pointers at the same concurrency on the same
database, with providers that answer instantly (but still a 1024-d vector and a few KB of
markdown per row), so only queue mechanics are measured:
- raw-SQL limit: a bare asyncpg loop, one coroutine per slot, each looping claim(1) ->
  checkpoint -> complete with the very statements the worker runs, and nothing else (no
  heartbeat, rescue, listener, logging, metadata building or task bookkeeping);
- the worker: `Worker` in drain mode (claims into free slots, checkpoint before the
  embedding, fenced write-back, heartbeat, rescue, listener), logging at WARNING.
Prints pointers/s for both and the ratio worker ÷ raw at each concurrency.

On a shared machine the load moves between the two halves of a pair: `--rounds N` measures N
pairs per concurrency back to back and judges the median ratio.

    .venv/bin/python bench/throughput.py [--pointers 20000] [--concurrency 3 32] [--rounds 1]
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
from bench.common import (  # noqa: E402
    DESCRIPTION,
    REFERENCES,
    VECTOR,
    bench_settings,
    instant_providers,
    migrated_database,
    seed_pointers,
)
from pgqueue_enricher.queue import statements  # noqa: E402
from pgqueue_enricher.queue.connections import keep_session, prepare_session, statement_cache_size  # noqa: E402
from pgqueue_enricher.queue.worker import Worker  # noqa: E402

# Metadata of the size the worker writes (usage, timings, provider, stage...).
METADATA = {
    "provider": "bench",
    "prompt_version": "bench-1",
    "stage": "complete",
    "usage": {"prompt_tokens": 1830, "output_tokens": 912, "thoughts_tokens": 2044},
    "stage_ms": {"download_ms": 0, "describe_ms": 0, "embed_ms": 0},
    "embedding_model": "bench",
    "embedding_dimensions": 1024,
}


async def raw_sql(url: str, count: int, concurrency: int) -> float:
    """The bare loop's pointers/s."""
    await seed_pointers(url, count)
    pool = await asyncpg.create_pool(  # connected as the worker's pool is (prepared on a direct session)
        url,
        min_size=concurrency,
        max_size=concurrency,
        statement_cache_size=await statement_cache_size(url),
        reset=keep_session,
        init=prepare_session,
    )

    async def slot(n: int) -> None:
        worker_id = f"raw-{n}"
        while batch := await statements.claim(pool, 1, worker_id, 60):
            fence = batch[0].fence(worker_id)
            await statements.checkpoint(pool, fence, DESCRIPTION, REFERENCES, METADATA)
            await statements.complete(pool, fence, DESCRIPTION, REFERENCES, VECTOR, METADATA)

    start = time.perf_counter()
    await asyncio.gather(*(slot(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - start
    await pool.close()
    return count / elapsed


async def worker(url: str, count: int, concurrency: int) -> float:
    """The worker's pointers/s."""
    await seed_pointers(url, count)
    settings = bench_settings(url, pass2_max_concurrent=concurrency)
    start = time.perf_counter()
    bench_worker = Worker(settings, providers=instant_providers(), drain=True, worker_id="bench")
    await bench_worker.run()
    elapsed = time.perf_counter() - start
    if bench_worker.metrics.completions != count:
        raise RuntimeError(f"the worker completed {bench_worker.metrics.completions} of {count} pointers")
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pointers", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[3, 32])
    parser.add_argument(
        "--rounds", type=int, default=1, help="raw/worker pairs per concurrency (median judged)"
    )
    args = parser.parse_args()
    from pgqueue_enricher.logs import configure_logging

    configure_logging("console", "WARNING")
    results = []
    with migrated_database("pgqe_bench_throughput") as url:
        for concurrency in args.concurrency:
            for _ in range(args.rounds):
                plain = asyncio.run(raw_sql(url, args.pointers, concurrency))
                ours = asyncio.run(worker(url, args.pointers, concurrency))
                results.append((concurrency, plain, ours))
    print(
        f"{args.pointers} pointers per run, instant providers (1024-d vector, {len(DESCRIPTION)} B markdown)"
    )
    print(f"{'concurrency':>11} {'raw-SQL limit/s':>16} {'worker/s':>9} {'ratio':>6}")
    for concurrency, plain, ours in results:
        print(f"{concurrency:>11} {plain:>16.0f} {ours:>9.0f} {ours / plain:>6.2f}")
    judged = {
        c: statistics.median(ours / plain for n, plain, ours in results if n == c) for c in args.concurrency
    }
    if args.rounds > 1:
        print("median ratio: " + ", ".join(f"concurrency {c} {m:.2f}" for c, m in judged.items()))
    print(f"ratio worker / raw-SQL limit, worst: {min(judged.values()):.2f} (target >= 0.80)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
