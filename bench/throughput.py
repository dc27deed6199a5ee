"""How close the worker gets to what the database alone allows.

Both sides process the same number of pending pointers with the same concurrency against
the same database, with providers that answer instantly, so only queue mechanics are
measured:
- raw-SQL limit: N coroutines on a pool, each looping claim(1) -> complete, with the same
  named statements and nothing else (no checkpoint, no heartbeat, no listener);
- the worker: `Worker` in drain mode (claims into free slots, checkpoint before the
  embedding, fenced write-back, heartbeat, rescue, listener).
Prints pointers/s for both and the ratio worker ÷ raw.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import asyncpg
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import migrated_database  # noqa: E402
from pgqueue_enricher import queue  # noqa: E402
from pgqueue_enricher.providers.factory import Providers  # noqa: E402
from pgqueue_enricher.providers.types import Embedding, EnrichmentInput, EnrichmentOutput  # noqa: E402
from pgqueue_enricher.settings import Settings  # noqa: E402
from pgqueue_enricher.worker import Worker  # noqa: E402

VECTOR = [0.03125] * 1024
DESCRIPTION = "## Description\nBench pointer.\n\n## Cross-References\n- S-101\n"


class InstantStore:
    async def fetch(self, png_path: str | None) -> bytes:
        return b"\x89PNG\r\n\x1a\n"

    async def aclose(self) -> None:
        return None


class InstantDescriber:
    name = "bench"
    prompt_version = "bench-1"

    async def describe(self, item: EnrichmentInput) -> EnrichmentOutput:
        return EnrichmentOutput(DESCRIPTION, ["S-101"], item.pointer_title, {"usage": {}})

    async def aclose(self) -> None:
        return None


class InstantEmbedder:
    name = "bench"

    async def embed(self, text: str) -> Embedding:
        return Embedding(VECTOR, "bench", 0, "bench")

    async def aclose(self) -> None:
        return None


async def seed(url: str, count: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE projects CASCADE")
        project = await conn.fetchval("INSERT INTO projects (user_id, name) VALUES ('b', 'b') RETURNING id")
        discipline = await conn.fetchval(
            "INSERT INTO disciplines (project_id, name, display_name) VALUES ($1, 'a', 'A') RETURNING id",
            project,
        )
        page = await conn.fetchval(
            "INSERT INTO pages (discipline_id, page_name) VALUES ($1, 'A-1') RETURNING id", discipline
        )
        await conn.execute(
            "INSERT INTO pointers (page_id, title, png_path) "
            "SELECT $1, 'Detail ' || g, 'crops/x.png' FROM generate_series(1, $2) g",
            page,
            count,
        )
    finally:
        await conn.close()


async def raw_sql(url: str, count: int, concurrency: int) -> float:
    await seed(url, count)
    pool = await asyncpg.create_pool(url, min_size=concurrency, max_size=concurrency, statement_cache_size=0)

    async def loop(n: int) -> None:
        while batch := await queue.claim(pool, 1, f"raw-{n}", 60):
            for pointer in batch:
                await queue.complete(pool, pointer.fence(f"raw-{n}"), DESCRIPTION, ["S-101"], VECTOR, {})

    start = time.perf_counter()
    await asyncio.gather(*(loop(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - start
    await pool.close()
    return count / elapsed


async def worker(url: str, count: int, concurrency: int) -> float:
    await seed(url, count)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=SecretStr(url),
        storage_dir="/tmp",
        enricher_provider="local",
        pass2_max_concurrent=concurrency,
        pass2_poll_interval=1.0,
        log_level="WARNING",
    )
    providers = Providers(InstantStore(), InstantDescriber(), InstantEmbedder())  # type: ignore[arg-type]
    start = time.perf_counter()
    await Worker(settings, providers=providers, drain=True, worker_id="bench").run()
    elapsed = time.perf_counter() - start
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pointers", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    from pgqueue_enricher.logs import configure_logging

    configure_logging("console", "WARNING")
    with migrated_database("pgqe_bench_throughput") as url:
        raw = asyncio.run(raw_sql(url, args.pointers, args.concurrency))
        ours = asyncio.run(worker(url, args.pointers, args.concurrency))
    print(f"{args.pointers} pointers, concurrency {args.concurrency}, instant providers")
    print(f"raw-SQL limit (claim + complete): {raw:8.0f} pointers/s")
    print(f"worker (claim, checkpoint, complete, heartbeat, listener): {ours:8.0f} pointers/s")
    print(f"ratio worker / raw-SQL limit: {ours / raw:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
