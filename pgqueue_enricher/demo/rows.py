"""The one writer of host-app rows (project → discipline → page → pointers) for the demo, the
tests and the benches.

The worker never inserts these: the host app does. Everything that needs rows to work on
writes them here, so that the demo, the tests and the benches insert pointers the way Pass 1
does (one statement for a batch, one doorbell ring) and a schema change is made in one place.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class NewPointer:
    """One pointer row to insert. `bbox` is (x, y, width, height) as fractions of the sheet;
    `age_seconds` backdates `created_at`, which orders the claim (0: the statement's now())."""

    page_id: uuid.UUID | None
    title: str
    png_path: str | None = None
    bbox: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    status: str = "pending"
    age_seconds: float = 0.0


async def insert_project(conn: asyncpg.Connection, name: str, *, user_id: str) -> uuid.UUID:
    """A project; its Experience files are seeded by the database trigger on insert."""
    return await conn.fetchval(
        "INSERT INTO projects (user_id, name) VALUES ($1, $2) RETURNING id", user_id, name
    )


async def insert_discipline(
    conn: asyncpg.Connection, project_id: uuid.UUID, display_name: str, *, name: str | None = None
) -> uuid.UUID:
    """A discipline; its `name` is the lower-cased display name unless given."""
    return await conn.fetchval(
        "INSERT INTO disciplines (project_id, name, display_name) "
        "VALUES ($1, coalesce($2, lower($3)), $3) RETURNING id",
        project_id,
        name,
        display_name,
    )


async def insert_page(
    conn: asyncpg.Connection,
    discipline_id: uuid.UUID,
    page_name: str,
    *,
    sheet_reflection: str | None = None,
    file_path: str = "",
) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO pages (discipline_id, page_name, file_path, sheet_reflection) "
        "VALUES ($1, $2, $3, $4) RETURNING id",
        discipline_id,
        page_name,
        file_path,
        sheet_reflection,
    )


async def insert_page_with_parents(
    conn: asyncpg.Connection,
    page_name: str,
    *,
    discipline: str,
    sheet_reflection: str | None,
    project_name: str,
    user_id: str,
    project_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, uuid.UUID]:
    """A page in a new discipline of `project_id`, or of a new project; (project_id, page_id)."""
    if project_id is None:
        project_id = await insert_project(conn, project_name, user_id=user_id)
    discipline_id = await insert_discipline(conn, project_id, discipline)
    page_id = await insert_page(conn, discipline_id, page_name, sheet_reflection=sheet_reflection)
    return project_id, page_id


async def insert_pointers(conn: asyncpg.Connection, pointers: Sequence[NewPointer]) -> list[uuid.UUID]:
    """All rows in one INSERT statement, as Pass 1 writes a batch; the ids in the given order."""
    if not pointers:
        return []
    rows = await conn.fetch(
        """
        INSERT INTO pointers (page_id, title, png_path, bbox_x, bbox_y, bbox_width, bbox_height,
                              enrichment_status, created_at)
        SELECT page_id, title, png_path, x, y, w, h, status, now() - make_interval(secs => age)
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::float8[],
                    $7::float8[], $8::text[], $9::float8[])
             WITH ORDINALITY AS u(page_id, title, png_path, x, y, w, h, status, age, n)
        ORDER BY n
        RETURNING id
        """,
        [p.page_id for p in pointers],
        [p.title for p in pointers],
        [p.png_path for p in pointers],
        [p.bbox[0] for p in pointers],
        [p.bbox[1] for p in pointers],
        [p.bbox[2] for p in pointers],
        [p.bbox[3] for p in pointers],
        [p.status for p in pointers],
        [float(p.age_seconds) for p in pointers],
    )
    return [row["id"] for row in rows]
