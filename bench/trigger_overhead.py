"""What the doorbell trigger costs Pass 1's inserts.

Inserts 10,000 pointers in statements of 100 rows, with and without the statement-level
doorbell trigger, interleaving the two in alternating order so that both see the same cache, WAL and
autovacuum conditions, and prints the ratio of the medians. Target: at most 1.05 (5 % overhead).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid

import asyncpg
import psycopg

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from bench.common import migrated_database, seed_page  # noqa: E402

ROWS, PER_STATEMENT, ROUNDS = 10_000, 100, 15
INSERT = (
    "INSERT INTO pointers (page_id, title, png_path) "
    "SELECT %s, 'Detail ' || g, 'crops/' || g || '.png' FROM generate_series(1, %s) g"
)


def timed_round(conn: psycopg.Connection, page_id: object) -> float:
    start = time.perf_counter()
    for _ in range(ROWS // PER_STATEMENT):
        conn.execute(INSERT, (page_id, PER_STATEMENT))
    elapsed = time.perf_counter() - start
    conn.execute("TRUNCATE pointers")
    return elapsed


async def new_page(url: str) -> uuid.UUID:
    conn = await asyncpg.connect(url)
    try:
        return (await seed_page(conn, "A-1"))[1]
    finally:
        await conn.close()


def main() -> int:
    with migrated_database("pgqe_bench_trigger") as url, psycopg.connect(url, autocommit=True) as conn:
        page = asyncio.run(new_page(url))
        timed_round(conn, page)  # warm-up
        with_trigger, without_trigger = [], []
        for round_number in range(ROUNDS):
            # Alternate which variant goes first, so that neither always follows a TRUNCATE.
            for enabled in (True, False) if round_number % 2 else (False, True):
                action = "ENABLE" if enabled else "DISABLE"
                conn.execute(f"ALTER TABLE pointers {action} TRIGGER pointers_doorbell_insert")
                (with_trigger if enabled else without_trigger).append(timed_round(conn, page))
            conn.execute("ALTER TABLE pointers ENABLE TRIGGER pointers_doorbell_insert")
    on, off = statistics.median(with_trigger), statistics.median(without_trigger)
    ratio = on / off
    print(f"inserted {ROWS} pointers in statements of {PER_STATEMENT}, {ROUNDS} rounds each")
    print(f"median with doorbell trigger:    {on * 1000:8.1f} ms ({ROWS / on:,.0f} rows/s)")
    print(f"median without doorbell trigger: {off * 1000:8.1f} ms ({ROWS / off:,.0f} rows/s)")
    print(f"ratio with/without: {ratio:.3f} (target <= 1.05)")
    return 0 if ratio <= 1.05 else 1


if __name__ == "__main__":
    sys.exit(main())
