"""Every statement behind the overview is served by an index at 100,000 pointers over 200 projects.

The volume is built once per test session (generate_series, row triggers off) and only read.
A plan that reads `pointers` with a sequential scan fails: the overview refreshes every few
seconds for every operator with it open, so a full read of the table there would be paid
all day.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from pgqueue_enricher.dashboard import data
from pgqueue_enricher.demo import embedded_postgres as database
from tests.conftest import throwaway_database
from tests.support.dashboard_rows import build_volume

OVERVIEW_STATEMENTS = {
    "overview_status_counts": (),
    "overview_lane_counts": (),
    "overview_oldest_pending": (),
    "overview_completions_per_hour": (24,),
    "overview_completed_last_hour": (),
    "overview_workers": (),
}


@pytest.fixture(scope="session")
def volume_url(pg_server: database.DatabaseHandle, template_url: str) -> Iterator[str]:
    with throwaway_database(pg_server, template_url) as url:
        yield url


@pytest.fixture(scope="session")
async def volume(volume_url: str) -> str:
    connection = await asyncpg.connect(volume_url)
    try:
        await build_volume(connection, pointers=100_000, projects=200)
    finally:
        await connection.close()
    return volume_url


@pytest.fixture
async def volume_conn(volume: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(volume)
    try:
        yield connection
    finally:
        await connection.close()


def scans(plan: dict) -> list[tuple[str, str | None, str | None]]:
    """(node type, relation, index) of every scan node in a JSON plan."""
    found = []
    node_type = plan["Node Type"]
    if "Scan" in node_type:
        found.append((node_type, plan.get("Relation Name"), plan.get("Index Name")))
    for child in plan.get("Plans", []):
        found += scans(child)
    return found


async def test_every_overview_query_is_index_driven(volume_conn: asyncpg.Connection) -> None:
    assert await volume_conn.fetchval("SELECT count(*) FROM pointers") == 100_000
    for name, args in OVERVIEW_STATEMENTS.items():
        raw = await volume_conn.fetchval("EXPLAIN (FORMAT JSON) " + data.query(name), *args)
        plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
        on_pointers = [scan for scan in scans(plan) if scan[1] == "pointers"]
        assert on_pointers, f"{name} reads pointers"
        for node_type, _, index in on_pointers:
            assert node_type != "Seq Scan" and index or node_type == "Bitmap Heap Scan", (name, on_pointers)


async def test_the_overview_shows_the_volume_it_reads(volume_conn: asyncpg.Connection) -> None:
    overview = await data.overview(volume_conn)
    assert sum(overview.counts.values()) == 100_000
    assert overview.counts["complete"] == 80_000 and overview.counts["failed"] == 4_000
    assert sum(n["pending"] for n in overview.lanes.values()) == overview.counts["pending"]
    assert sum(n for _, n in overview.completions) <= overview.counts["complete"]
