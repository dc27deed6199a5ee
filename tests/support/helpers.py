"""Small test helpers: the tests' defaults for the shared row builder (pgqueue_enricher.demo.rows),
and the failure a provider call raises."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from pgqueue_enricher.demo import rows
from pgqueue_enricher.errors import EnrichmentFailure

# The png_path insert_pointers gives every pointer; the `crops` fixture serves a PNG there.
CROP = "crops/detail.png"


async def make_page(
    conn: asyncpg.Connection,
    *,
    page_name: str = "A-501 Wall Sections",
    sheet_reflection: str | None = "Wall sections for the east elevation.",
    discipline: str = "Architectural",
    project_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, uuid.UUID]:
    """Returns (project_id, page_id)."""
    return await rows.insert_page_with_parents(
        conn,
        page_name,
        discipline=discipline,
        sheet_reflection=sheet_reflection,
        project_name="Test Project",
        user_id="user-1",
        project_id=project_id,
    )


async def insert_pointers(
    conn: asyncpg.Connection,
    page_id: uuid.UUID,
    count: int,
    *,
    status: str = "pending",
    title_prefix: str = "Detail",
    png_path: str | None = CROP,
) -> list[uuid.UUID]:
    """One INSERT statement for all rows, like Pass 1 does; created_at increases with the index."""
    return await rows.insert_pointers(
        conn,
        [
            rows.NewPointer(page_id, f"{title_prefix} {n}", png_path, status=status, age_seconds=count - n)
            for n in range(1, count + 1)
        ],
    )


async def raised_failure(call: Awaitable[object]) -> EnrichmentFailure:
    """The EnrichmentFailure that awaiting `call` raises (the test fails if it raises none)."""
    with pytest.raises(EnrichmentFailure) as caught:
        await call
    return caught.value


async def until(condition: Callable[[], bool], timeout: float) -> None:
    """Wait for a condition that has no event of its own (a counter of the worker)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the worker offers no event for its counters
            await asyncio.sleep(0.02)


async def seed_large_queue(
    conn: asyncpg.Connection, *, complete: int = 1_000_000, pending: int = 100_000, projects: int = 200
) -> None:
    """A mostly complete table at production scale, built in SQL: `projects` projects of one
    page each, `complete` done rows and `pending` rows (both lanes, turns numbered per
    project) spread round-robin over them. The row triggers are off while it loads, so the
    denormalised columns are written directly, as the triggers would.

    The secondary indexes are dropped for the load and rebuilt from their own definitions
    afterwards: one sorted build per index instead of a million random insertions each,
    which halves the time (the suite builds this table once, see `large_queue_url`)."""
    indexes = await conn.fetch(
        """
        SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
        FROM pg_index AS i
        WHERE i.indrelid = 'public.pointers'::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
        """
    )
    for index in indexes:
        await conn.execute(f"DROP INDEX {index['name']}")
    await conn.execute("ALTER TABLE pointers DISABLE TRIGGER USER")
    try:
        await conn.execute(
            """
            WITH p AS (INSERT INTO projects (user_id, name)
                       SELECT 'load', 'project ' || g FROM generate_series(1, $1) g RETURNING id),
            d AS (INSERT INTO disciplines (project_id, name, display_name)
                  SELECT id, 'arch', 'Architectural' FROM p RETURNING id, project_id)
            INSERT INTO pages (discipline_id, page_name) SELECT id, 'A-101' FROM d
            """,
            projects,
        )
        await conn.execute(
            """
            CREATE TEMP TABLE load_pages AS
            SELECT pg.id AS page_id, d.project_id, row_number() OVER (ORDER BY pg.id) - 1 AS n
            FROM pages pg JOIN disciplines d ON d.id = pg.discipline_id
            """
        )
        await conn.execute(
            """
            INSERT INTO pointers (page_id, title, description, enrichment_status, enrichment_project_id,
                                  created_at)
            SELECT lp.page_id, 'done', 'described', 'complete', lp.project_id,
                   now() - interval '30 days' + g * interval '1 ms'
            FROM generate_series(1, $1) g JOIN load_pages lp ON lp.n = g % $2
            """,
            complete,
            projects,
        )
        await conn.execute(
            """
            INSERT INTO pointers (page_id, title, enrichment_status, enrichment_project_id, enrichment_lane,
                                  enrichment_turn, png_path, created_at)
            SELECT lp.page_id, 'queued', 'pending', lp.project_id,
                   CASE WHEN g % 2 = 0 THEN 'interactive' ELSE 'backfill' END,
                   g / (2 * $2) + 1, 'crops/detail.png', now() - interval '1 day' + g * interval '1 ms'
            FROM generate_series(1, $1) g JOIN load_pages lp ON lp.n = g % $2
            """,
            pending,
            projects,
        )
        await conn.execute("DROP TABLE load_pages")
    finally:
        await conn.execute("ALTER TABLE pointers ENABLE TRIGGER USER")
        for index in indexes:
            await conn.execute(index["definition"])
    await conn.execute("VACUUM ANALYZE pointers")
