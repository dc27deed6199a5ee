"""Rows for the dashboard's tests: a small project with a row of every kind, and a large
volume (100,000 pointers over 200 projects) built in SQL for the plan test and the bench."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import asyncpg

from tests.support.helpers import insert_pointers, make_page

HOSTILE = "<script>alert('pwned')</script>"
GEMINI_KEY = "AIzaSyDashboardTestKey0123456789abcdefXY"
VIEWER_PASSWORD = "viewer-Pw-7c1e9a"
ADMIN_PASSWORD = "admin-Pw-42b8d0"
DESCRIPTION = (
    "# Detail 4\n\n## Description\n\nA **wall section** with <img src=x onerror=alert(1)> inline.\n\n"
    "[click](javascript:alert(1))\n\n## Cross-References\n\n- S-101\n"
)


@dataclass
class Seeded:
    project_id: uuid.UUID
    page_id: uuid.UUID
    failed: list[uuid.UUID]
    complete: uuid.UUID
    pending: list[uuid.UUID]


async def seed_small(conn: asyncpg.Connection) -> Seeded:
    """One project: 3 pending, 1 complete with stamps and markdown, 3 failed (two reasons, one
    quoting a secret and one carrying a script tag), titles included."""
    project_id, page_id = await make_page(conn, page_name=f"A-501 {HOSTILE}")
    pending = await insert_pointers(conn, page_id, 3)
    [complete] = await insert_pointers(conn, page_id, 1, title_prefix="Done")
    failed = await insert_pointers(conn, page_id, 3, title_prefix=f"Bad {HOSTILE}")
    metadata = {
        "model": "gemini-3-flash-preview",
        "model_version": "gemini-3-flash-preview-001",
        "prompt_version": "p7",
        "embedding_model": "voyage-3",
        "enriched_at": "2026-12-01T10:00:00+00:00",
        "usage": {"prompt_tokens": 1500, "output_tokens": 400},
        "estimated_cost_usd": 0.0021,
    }
    await conn.execute(
        """
        UPDATE pointers SET enrichment_status = 'complete', description = $2,
               cross_references = '["S-101", "Detail 4/A501"]'::jsonb, enrichment_metadata = $3::jsonb
        WHERE id = $1
        """,
        complete,
        DESCRIPTION,
        json.dumps(metadata),
    )
    errors = [
        f"crop rejected: {HOSTILE}",
        f"Gemini refused key {GEMINI_KEY}: 400",
        f"crop rejected: {HOSTILE}",
    ]
    for pointer_id, error in zip(failed, errors, strict=True):
        await conn.execute(
            "UPDATE pointers SET enrichment_status = 'failed', enrichment_error = $2, enrichment_attempts = 5 "
            "WHERE id = $1",
            pointer_id,
            error,
        )
    return Seeded(project_id, page_id, failed, complete, pending)


async def build_volume(conn: asyncpg.Connection, *, pointers: int = 100_000, projects: int = 200) -> None:
    """`pointers` rows over `projects` projects (one page each), mostly complete with a
    realistic description and metadata, the rest pending (both lanes), processing or failed
    under a few reasons; completions spread over the last 30 days. Row triggers are off for
    the load (the denormalised columns are written directly) and the table is analysed."""
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
            WITH lp AS (
                SELECT pg.id AS page_id, d.project_id, row_number() OVER (ORDER BY pg.id) - 1 AS n
                FROM pages pg JOIN disciplines d ON d.id = pg.discipline_id
            )
            INSERT INTO pointers (page_id, title, description, enrichment_status, enrichment_project_id,
                                  enrichment_lane, enrichment_turn, enrichment_attempts, enrichment_error,
                                  enrichment_locked_by, enrichment_locked_until, enrichment_metadata,
                                  png_path, created_at, updated_at)
            SELECT lp.page_id, 'Detail ' || g, s.description, s.status, lp.project_id,
                   CASE WHEN g % 3 = 0 THEN 'backfill' ELSE 'interactive' END,
                   CASE WHEN s.status = 'pending' THEN g / (3 * $2) + 1 END,
                   CASE WHEN s.status = 'failed' THEN 5 ELSE 1 END,
                   CASE WHEN s.status = 'failed' THEN (ARRAY[
                       'crop not found in bucket project-files: the object is missing (HTTP 400 NoSuchKey)',
                       'Gemini gave no usable answer after 5 attempts (empty final text)',
                       'crop rejected: 24.1 MB is over PASS2_MAX_IMAGE_BYTES (20 MB)',
                       'Gemini blocked the request for safety (finishReason SAFETY)'])[g % 4 + 1] END,
                   CASE WHEN s.status = 'processing' THEN 'worker-' || (g % 4) END,
                   CASE WHEN s.status = 'processing' THEN now() + interval '5 minutes' END,
                   CASE WHEN s.status = 'complete' THEN jsonb_build_object(
                       'model', 'gemini-3-flash-preview', 'prompt_version', 'p7', 'embedding_model', 'voyage-3',
                       'enriched_at', now(), 'estimated_cost_usd', 0.002,
                       'usage', jsonb_build_object('prompt_tokens', 1500, 'output_tokens', 400)) END,
                   'crops/detail.png',
                   now() - interval '9 days' + g * interval '5 s',
                   now() - (g % 720) * interval '1 hour' - (g % 3600) * interval '1 s'
            FROM generate_series(1, $1) g
            JOIN lp ON lp.n = g % $2
            CROSS JOIN LATERAL (
                SELECT CASE WHEN g % 100 < 80 THEN 'complete' WHEN g % 100 < 95 THEN 'pending'
                            WHEN g % 100 < 96 THEN 'processing' ELSE 'failed' END AS status,
                       CASE WHEN g % 100 < 80 THEN repeat('Extracted content of a detail. ', 40) ELSE '' END
                           AS description
            ) AS s
            """,
            pointers,
            projects,
        )
    finally:
        await conn.execute("ALTER TABLE pointers ENABLE TRIGGER USER")
    await conn.execute("VACUUM ANALYZE pointers")
    await conn.execute("ANALYZE pages")
    await conn.execute("ANALYZE disciplines")
    await conn.execute("ANALYZE projects")
