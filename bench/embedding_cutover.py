"""How long `embeddings cutover` (and `rollback`) hold pointers at 100,000 pointers.

Seeds N complete pointers with a 1024-dimension vector each and a full shadow of the new
model (as a finished fill leaves them), then times the cutover and the rollback: the same
dimensions (one swap statement), and other dimensions (the column retyped, every vector
written twice). Writes to pointers wait for the whole step; readers wait only while the
column is retyped. With --index, an index on pointers.embedding (as a host may have) is kept
up to date by the step and, for other dimensions, rebuilt.

    python bench/embedding_cutover.py [--pointers 100000] [--index none|hnsw|ivfflat]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import asyncpg

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from bench.common import migrated_database, seed_page  # noqa: E402
from pgqueue_enricher import model_switch  # noqa: E402
from pgqueue_enricher.queue.connections import prepare_session  # noqa: E402

INDEXES = {
    "none": None,
    "hnsw": "CREATE INDEX bench_embedding ON pointers USING hnsw (embedding vector_cosine_ops)",
    "ivfflat": "CREATE INDEX bench_embedding ON pointers USING ivfflat (embedding vector_cosine_ops) "
    "WITH (lists = 100)",
}


async def seed(conn: asyncpg.Connection, count: int, new_dimensions: int, index: str | None) -> None:
    await conn.execute("TRUNCATE projects CASCADE")
    await conn.execute("DELETE FROM pgqueue_enricher_embedding_switch")
    _, page = await seed_page(conn, "A-501")
    # Vectors that differ per row (an index over one repeated vector would measure nothing).
    await conn.execute(
        """
        WITH base AS (SELECT array_agg(sin(i))::real[] AS v FROM generate_series(1, 1024) i)
        INSERT INTO pointers (page_id, title, description, enrichment_status, embedding, enrichment_metadata)
        SELECT $1, 'Detail ' || g, 'described', 'complete',
               (ARRAY[(g % 9973)::real / 9973] || base.v[2:1024])::vector,
               '{"embedding_model": "voyage-3", "embedding_dimensions": 1024}'
        FROM generate_series(1, $2) g, base
        """,
        page,
        count,
    )
    await conn.execute(
        """
        WITH base AS (SELECT array_agg(cos(i))::real[] AS v FROM generate_series(1, $1) i)
        INSERT INTO pgqueue_enricher_embedding_shadow (pointer_id, model, dimensions, embedding)
        SELECT p.id, 'voyage-4', $1, (ARRAY[(hashtext(p.id::text) % 9973)::real / 9973] || base.v[2:$1])::vector
        FROM pointers p, base
        """,
        new_dimensions,
    )
    await conn.execute(
        "INSERT INTO pgqueue_enricher_embedding_switch (phase, current_model, current_dimensions, "
        "shadow_model, shadow_dimensions) VALUES ('filling', 'voyage-3', 1024, 'voyage-4', $1)",
        new_dimensions,
    )
    if index:
        await conn.execute(index)
    await conn.execute("VACUUM ANALYZE pointers")
    await conn.execute("VACUUM ANALYZE pgqueue_enricher_embedding_shadow")


async def measure(url: str, count: int, index_name: str) -> None:
    conn = await asyncpg.connect(url, command_timeout=3600)
    await prepare_session(conn)
    try:
        for new_dimensions, label in (
            (1024, "same dimensions (1024 -> 1024)"),
            (2048, "other dimensions (1024 -> 2048)"),
        ):
            await conn.execute("DROP INDEX IF EXISTS bench_embedding")
            if await model_switch.column_dimensions(conn) != 1024:
                await conn.execute("ALTER TABLE pointers ALTER COLUMN embedding TYPE vector(1024) USING NULL")
            seeding = time.perf_counter()
            await seed(conn, count, new_dimensions, INDEXES[index_name])
            print(f"{label}: seeded {count:,} pointers in {time.perf_counter() - seeding:.1f} s")
            for step in ("cutover", "rollback"):
                started = time.perf_counter()
                _, rows = await getattr(model_switch, step)(conn)
                print(f"  {step:<8} {rows:,} vectors swapped in {time.perf_counter() - started:.2f} s")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pointers", type=int, default=100_000)
    parser.add_argument("--index", choices=sorted(INDEXES), default="none")
    args = parser.parse_args()
    print(f"embedding cutover at {args.pointers:,} pointers, index on pointers.embedding: {args.index}")
    with migrated_database("pgqe_bench_cutover") as url:
        asyncio.run(measure(url, args.pointers, args.index))


if __name__ == "__main__":
    main()
