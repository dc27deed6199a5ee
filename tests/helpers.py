"""Small test helpers: builders for a project, its disciplines, pages and pointers, and the
failure a provider call raises."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable

import asyncpg
import pytest

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
    if project_id is None:
        project_id = await conn.fetchval(
            "INSERT INTO projects (user_id, name) VALUES ('user-1', 'Test Project') RETURNING id"
        )
    discipline_id = await conn.fetchval(
        "INSERT INTO disciplines (project_id, name, display_name) VALUES ($1, lower($2), $2) RETURNING id",
        project_id,
        discipline,
    )
    page_id = await conn.fetchval(
        "INSERT INTO pages (discipline_id, page_name, sheet_reflection) VALUES ($1, $2, $3) RETURNING id",
        discipline_id,
        page_name,
        sheet_reflection,
    )
    return project_id, page_id


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
    rows = await conn.fetch(
        """
        INSERT INTO pointers (page_id, title, png_path, enrichment_status, created_at)
        SELECT $1, $2 || ' ' || g, $3, $4, now() - make_interval(secs => $5 - g)
        FROM generate_series(1, $5) AS g
        RETURNING id
        """,
        page_id,
        title_prefix,
        png_path,
        status,
        count,
    )
    return [row["id"] for row in rows]


async def raised_failure(call: Awaitable[object]) -> EnrichmentFailure:
    """The EnrichmentFailure that awaiting `call` raises (the test fails if it raises none)."""
    with pytest.raises(EnrichmentFailure) as caught:
        await call
    return caught.value
