"""Small test helpers: the tests' defaults for the shared row builder (pgqueue_enricher.demo.rows),
and the failure a provider call raises."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable

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
