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

With a limit set (`--gate limited` or `gemini-limited`) every gated call takes a permit from
the provider's shared row, and the statements the worker runs are those that draw them:
the claim draws the Gemini permit, the checkpoint the Voyage one (permits.py). So the bare
loop is run twice: once with those very statements (the raw-SQL limit with the gate: what
the database allows for the same work, against which the queue's overhead is judged), and
once with the plain ones (what the database allows without the gate). The ratio of the two
raw loops is what the gate itself costs the database; worker ÷ plain raw is the whole cost
of turning the gate on, printed beside the judged ratio. Also printed: the share of gated
calls whose permit rode on a claim or checkpoint, and the gated calls per permit statement
of their own (the rest, coalesced).

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
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (  # noqa: E402
    DESCRIPTION,
    GATES,
    REFERENCES,
    VECTOR,
    bench_settings,
    gate_settings,
    instant_providers,
    migrated_database,
    seed_pointers,
)
from pgqueue_enricher.admission.gate import (  # noqa: E402
    CHARS_PER_TOKEN,
    HEADROOM,
    IMAGE_TOKENS,
    INCREASE_RPM,
    LABEL_TOKENS,
    MAX_HOLD_S,
    embed_tokens,
)
from pgqueue_enricher.providers.prompt import SYSTEM_INSTRUCTION  # noqa: E402
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


async def raw_sql(url: str, count: int, concurrency: int, gate: str = "off") -> float:
    """The bare loop's pointers/s: with `gate` limited, running the statements that draw the
    permits (the claim's for Gemini; the checkpoint's for Voyage when it is limited too)."""
    limits = gate_settings(gate)
    gemini = "pass2_gemini_rpm" in limits
    voyage = "pass2_voyage_rpm" in limits
    await seed_pointers(url, count)
    pool = await asyncpg.create_pool(  # connected as the worker's pool is (prepared on a direct session)
        url,
        min_size=concurrency,
        max_size=concurrency,
        statement_cache_size=await statement_cache_size(url),
        reset=keep_session,
        init=prepare_session,
    )

    await pool.execute(
        "UPDATE pgqueue_enricher_provider_state SET rpm_limit = CASE provider WHEN 'gemini' THEN $1::float8"
        " ELSE $2::float8 END",
        limits.get("pass2_gemini_rpm"),
        limits.get("pass2_voyage_rpm"),
    )
    permit = (MAX_HOLD_S, HEADROOM, INCREASE_RPM, 0)  # as the worker's, with no correction to charge
    describe_estimate = (IMAGE_TOKENS + LABEL_TOKENS, len(SYSTEM_INSTRUCTION), CHARS_PER_TOKEN)

    async def claim(worker_id: str) -> list[statements.ClaimedPointer]:
        if not gemini:
            return await statements.claim(pool, 1, worker_id, 60)
        rows = await statements.claim_with_permits(
            pool, 1, worker_id, 60, "gemini", *permit, *describe_estimate
        )
        return [statements.claimed_pointer(row) for row in rows]

    async def checkpoint(fence: statements.Fence) -> None:
        if not voyage:
            await statements.checkpoint(pool, fence, DESCRIPTION, REFERENCES, METADATA)
            return
        await statements.checkpoint_with_permit(
            pool, fence, DESCRIPTION, REFERENCES, METADATA, "voyage", *permit, embed_tokens(DESCRIPTION)
        )

    async def slot(n: int) -> None:
        worker_id = f"raw-{n}"
        while batch := await claim(worker_id):
            fence = batch[0].fence(worker_id)
            await checkpoint(fence)
            await statements.complete(pool, fence, DESCRIPTION, REFERENCES, VECTOR, METADATA)

    start = time.perf_counter()
    await asyncio.gather(*(slot(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - start
    await pool.close()
    return count / elapsed


async def worker(
    url: str, count: int, concurrency: int, gate: str = "off"
) -> tuple[float, tuple[float, float | None] | None]:
    """The worker's pointers/s, and with a limit set the share of gated calls whose permit rode
    on a claim or checkpoint and the gated calls per permit statement of their own (None: none)."""
    await seed_pointers(url, count)
    settings = bench_settings(url, pass2_max_concurrent=concurrency, **gate_settings(gate))
    start = time.perf_counter()
    bench_worker = Worker(settings, providers=instant_providers(gate=gate), drain=True, worker_id="bench")
    await bench_worker.run()
    elapsed = time.perf_counter() - start
    if bench_worker.metrics.completions != count:
        raise RuntimeError(f"the worker completed {bench_worker.metrics.completions} of {count} pointers")
    permits = bench_worker.admission.permits.values()
    statements = sum(p.statements for p in permits)
    carried = sum(p.carried for p in permits)  # drawn by a claim or a checkpoint
    own = sum(p.permits for p in permits)
    if not carried + own:
        return count / elapsed, None
    return count / elapsed, (carried / (carried + own), own / statements if statements else None)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pointers", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[3, 32])
    parser.add_argument(
        "--gate", choices=GATES, default="open", help="provider admission gate (bench/common.py GATES)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="raw/worker pairs per concurrency (median judged)"
    )
    args = parser.parse_args()
    from pgqueue_enricher.logs import configure_logging

    configure_logging("console", "WARNING")
    limited = bool(gate_settings(args.gate))
    results = []
    with migrated_database("pgqe_bench_throughput") as url:
        for concurrency in args.concurrency:
            for _ in range(args.rounds):
                plain = asyncio.run(raw_sql(url, args.pointers, concurrency))
                gated = asyncio.run(raw_sql(url, args.pointers, concurrency, args.gate)) if limited else plain
                ours, permits = asyncio.run(worker(url, args.pointers, concurrency, args.gate))
                results.append((concurrency, plain, gated, ours, permits))
    print(
        f"{args.pointers} pointers per run, instant providers (1024-d vector, {len(DESCRIPTION)} B markdown), "
        f"admission gate {args.gate}"
    )
    if limited:
        print(
            f"{'concurrency':>11} {'raw/s':>6} {'raw, gate statements/s':>22} {'worker/s':>9} {'ratio':>6}"
            f" {'worker/raw':>10} {'gate cost':>9} {'rode':>5} {'calls/statement':>15}"
        )
    else:
        print(f"{'concurrency':>11} {'raw-SQL limit/s':>16} {'worker/s':>9} {'ratio':>6}")
    for concurrency, plain, gated, ours, permits in results:
        if not limited:
            print(f"{concurrency:>11} {plain:>16.0f} {ours:>9.0f} {ours / plain:>6.2f}")
            continue
        rode, per = permits if permits is not None else (0.0, None)
        print(
            f"{concurrency:>11} {plain:>6.0f} {gated:>22.0f} {ours:>9.0f} {ours / gated:>6.2f}"
            f" {ours / plain:>10.2f} {gated / plain:>9.2f} {rode:>5.0%} {'-' if per is None else f'{per:.1f}':>15}"
        )

    def median(of: Any) -> dict[int, float]:
        return {c: statistics.median(of(*r) for r in results if r[0] == c) for c in args.concurrency}

    judged = median(lambda c, plain, gated, ours, p: ours / gated)
    if args.rounds > 1:
        print("median ratio: " + ", ".join(f"concurrency {c} {m:.2f}" for c, m in judged.items()))
    if limited:
        whole = median(lambda c, plain, gated, ours, p: ours / plain)
        cost = median(lambda c, plain, gated, ours, p: gated / plain)
        print(
            "median worker / raw without the gate: "
            + ", ".join(f"concurrency {c} {m:.2f}" for c, m in whole.items())
            + "; the gate's statements alone (raw with ÷ raw without): "
            + ", ".join(f"concurrency {c} {m:.2f}" for c, m in cost.items())
        )
    print(f"ratio worker / raw-SQL limit, worst: {min(judged.values()):.2f} (target >= 0.80)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
