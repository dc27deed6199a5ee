"""The dashboard at volume: 100,000 pointers over 200 projects; the overview's weight and time.

Prints the overview's page weight (HTML plus the style sheet and script it loads; target
under 200 KB) and its render time through the whole app, database included (median of a
few requests after a warm-up; target under 1 s), and the other pages' times for reference.
Exit 1 when a target is missed.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import asyncpg
import httpx

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from bench.common import migrated_database  # noqa: E402
from pgqueue_enricher.dashboard import create_app  # noqa: E402
from pgqueue_enricher.dashboard.security import everyone_admin  # noqa: E402
from tests.support.dashboard_rows import build_volume  # noqa: E402

POINTERS = 100_000
PROJECTS = 200
ROUNDS = 7
WEIGHT_LIMIT = 200 * 1024
TIME_LIMIT_S = 1.0


async def timed(http: httpx.AsyncClient, path: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await http.get(path)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response


async def measure(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await build_volume(conn, pointers=POINTERS, projects=PROJECTS)
        print(
            f"built {POINTERS:,} pointers over {PROJECTS} projects in {time.perf_counter() - started:.1f} s"
        )
    finally:
        await conn.close()
    app = create_app(database_url=url, role=everyone_admin)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
        await timed(http, "/")  # warm-up: the pool opens, the templates compile
        times = []
        for _ in range(ROUNDS):
            elapsed, page = await timed(http, "/")
            times.append(elapsed)
        assets = [await http.get(path) for path in ("/static/dashboard.css", "/static/refresh.js")]
        weight = len(page.content) + sum(len(a.content) for a in assets)
        median = statistics.median(times)
        print(
            f"overview page weight: {weight / 1024:.1f} KB (HTML {len(page.content) / 1024:.1f} KB; target < 200 KB)"
        )
        print(
            f"overview render time: median {median * 1000:.0f} ms, max {max(times) * 1000:.0f} ms (target < 1 s)"
        )
        for path in ("/overview/live", "/projects", "/failures", "/providers", "/workers"):
            elapsed, response = await timed(http, path)
            print(f"  {path:<15} {elapsed * 1000:6.0f} ms  {len(response.content) / 1024:6.1f} KB")
    return 0 if weight < WEIGHT_LIMIT and median < TIME_LIMIT_S else 1


def main() -> int:
    with migrated_database("pgqe_bench_dashboard") as url:
        return asyncio.run(measure(url))


if __name__ == "__main__":
    sys.exit(main())
