"""Every statement the dashboard reads with is served by an index at 100,000 pointers over 200 projects.

The volume is built once per test session (generate_series, row triggers off) and only read.
A plan that reads `pointers` with a sequential scan fails: the overview refreshes every few
seconds for every operator with it open, so a full read of the table there would be paid
all day, and the other pages must not get slower with the table's history.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from pgqueue_enricher.dashboard import data
from pgqueue_enricher.demo import embedded_postgres as database
from pgqueue_enricher.schema.sqlfiles import blocks, query
from tests.conftest import throwaway_database
from tests.support.dashboard_rows import build_volume

OVERVIEW_STATEMENTS = {
    "pointers_status_counts": (),  # sql/queries.sql, shared with `status`
    "overview_lane_counts": (),
    "overview_oldest_pending": (),
    "overview_completions_per_hour": (24,),
    "overview_completed_last_hour": (),
    "overview_workers": (),
}
PAGE_STATEMENTS = {
    "projects_progress": (),
    "projects_recent_cost": (),
    "failures_groups": (50,),
    "failures_rows": (["0" * 32], 20),
    "failures_group_ids": ("0" * 32,),
    "pointer_read": (uuid.UUID(int=1),),
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
    await assert_index_driven(volume_conn, OVERVIEW_STATEMENTS)


async def test_every_query_of_the_other_pages_is_index_driven(volume_conn: asyncpg.Connection) -> None:
    await assert_index_driven(volume_conn, PAGE_STATEMENTS)


def sql_of(name: str) -> str:
    """A statement of sql/dashboard.sql, or of sql/queries.sql for those the dashboard shares."""
    return blocks("dashboard.sql").get(name) or query(name)


async def assert_index_driven(volume_conn: asyncpg.Connection, statements: dict[str, tuple]) -> None:
    for name, args in statements.items():
        raw = await volume_conn.fetchval("EXPLAIN (FORMAT JSON) " + sql_of(name), *args)
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


async def test_the_projects_page_adds_up_to_the_table(volume_conn: asyncpg.Connection) -> None:
    projects = await data.projects(volume_conn)
    assert len(projects) == 200
    for status, expected in (("total", 100_000), ("complete", 80_000), ("failed", 4_000)):
        assert sum(p[status] for p in projects) == expected, status
    pending = await volume_conn.fetchval("SELECT count(*) FROM pointers WHERE enrichment_status = 'pending'")
    assert sum(p["pending"] for p in projects) == pending
    assert 0 < sum(p["cost_24h"] for p in projects) < sum(p["cost_7d"] for p in projects)
