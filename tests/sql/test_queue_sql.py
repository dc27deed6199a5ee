"""The queue's SQL on a real Postgres: doorbell, seeding, requeue, claims, fencing, plans."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from pgqueue_enricher.experience import seed_default_experience
from pgqueue_enricher.queue import statements
from tests.support.helpers import insert_pointers, make_page

CHANNEL = "pointer_enrichment"


class Doorbell:
    """Counts notifications on the channel; `settled()` waits until a marker NOTIFY arrives,
    which Postgres delivers after every earlier notification of committed transactions."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.rings = 0
        self._marker: asyncio.Future[None] | None = None

    async def __aenter__(self) -> Doorbell:
        await self.conn.add_listener(CHANNEL, self._on_notify)
        await self.conn.add_listener("test_marker", self._on_marker)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.remove_listener(CHANNEL, self._on_notify)
        await self.conn.remove_listener("test_marker", self._on_marker)

    def _on_notify(self, *args: object) -> None:
        self.rings += 1

    def _on_marker(self, *args: object) -> None:
        if self._marker and not self._marker.done():
            self._marker.set_result(None)

    async def settled(self, sender: asyncpg.Connection) -> int:
        self._marker = asyncio.get_running_loop().create_future()
        await sender.execute("NOTIFY test_marker")
        await asyncio.wait_for(self._marker, 5)
        return self.rings


async def test_new_project_gets_exactly_five_experience_files_once(conn: asyncpg.Connection) -> None:
    project = await conn.fetchval("INSERT INTO projects (user_id, name) VALUES ('u', 'p') RETURNING id")
    files = dict(
        await conn.fetch("SELECT path, content FROM experience_files WHERE project_id = $1", project)
    )
    assert set(files) == {"routing_rules.md", "corrections.md", "preferences.md", "schedule.md", "gaps.md"}
    assert all(content.startswith("# ") for content in files.values())
    for section in ("Default Routes", "Extended Knowledge", "Learned Patterns"):
        assert f"## {section}" in files["routing_rules.md"]
    assert await conn.fetchval("SELECT seed_default_experience($1)", project) == 0
    assert await conn.fetchval("SELECT count(*) FROM experience_files WHERE project_id = $1", project) == 5


async def test_seeding_leaves_an_edited_file_alone_and_restores_a_deleted_one(
    conn: asyncpg.Connection,
) -> None:
    project = await conn.fetchval("INSERT INTO projects (user_id, name) VALUES ('u', 'p') RETURNING id")
    await conn.execute("UPDATE experience_files SET content = '# Mine' WHERE path = 'gaps.md'")
    await conn.execute("DELETE FROM experience_files WHERE path = 'schedule.md'")
    assert await seed_default_experience(project, conn) == 1
    assert await conn.fetchval("SELECT content FROM experience_files WHERE path = 'gaps.md'") == "# Mine"


async def test_experience_files_cascade_when_the_project_is_deleted(conn: asyncpg.Connection) -> None:
    project = await conn.fetchval("INSERT INTO projects (user_id, name) VALUES ('u', 'p') RETURNING id")
    await conn.execute("DELETE FROM projects WHERE id = $1", project)
    assert await conn.fetchval("SELECT count(*) FROM experience_files") == 0


def test_python_seed_wrapper_works_with_a_sqlalchemy_session(db_url: str) -> None:
    from sqlalchemy import create_engine, pool, text
    from sqlalchemy.orm import Session

    from pgqueue_enricher.schema.migrations import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(db_url), poolclass=pool.NullPool)
    with Session(engine) as session:
        project = session.execute(
            text("INSERT INTO projects (user_id, name) VALUES ('u','p') RETURNING id")
        ).scalar()
        session.execute(text("DELETE FROM experience_files"))
        assert seed_default_experience(project, session) == 5
        assert seed_default_experience(project, session) == 0
    engine.dispose()


async def test_one_insert_of_500_pointers_rings_the_doorbell_once(
    db_url: str, conn: asyncpg.Connection
) -> None:
    _, page = await make_page(conn)
    listener = await asyncpg.connect(db_url)
    try:
        async with Doorbell(listener) as bell:
            await insert_pointers(conn, page, 500)
            assert await bell.settled(conn) == 1
            await insert_pointers(conn, page, 3, status="complete")
            assert await bell.settled(conn) == 1, "inserting complete rows must not ring"
            await conn.execute("UPDATE pointers SET description = 'x' WHERE enrichment_status = 'complete'")
            assert await bell.settled(conn) == 1, "updates that move nothing to pending must not ring"
            await conn.execute(
                "UPDATE pointers SET enrichment_status = 'pending' WHERE enrichment_status = 'complete'"
            )
            assert await bell.settled(conn) == 2
    finally:
        await listener.close()


async def test_requeue_filters_by_project_ids_and_error_and_rings(
    db_url: str, conn: asyncpg.Connection
) -> None:
    project_a, page_a = await make_page(conn)
    _, page_b = await make_page(conn)
    a = await insert_pointers(conn, page_a, 4, status="failed")
    b = await insert_pointers(conn, page_b, 2, status="failed")
    await conn.execute(
        "UPDATE pointers SET enrichment_error = 'Gemini rate limit (429)', enrichment_attempts = 5 WHERE id = ANY($1)",
        a[:2] + b[:1],
    )
    await conn.execute(
        "UPDATE pointers SET enrichment_error = 'crop not found' WHERE enrichment_error IS NULL"
    )
    listener = await asyncpg.connect(db_url)
    try:
        async with Doorbell(listener) as bell:
            assert (
                await conn.fetchval(
                    "SELECT requeue_failed_pointers(project_id => $1, error_like => '%429%')", project_a
                )
                == 2
            )
            assert await bell.settled(conn) == 1
            assert await conn.fetchval("SELECT requeue_failed_pointers(pointer_ids => $1)", [b[1], a[0]]) == 1
            assert await conn.fetchval("SELECT requeue_failed_pointers(error_like => 'nothing%')") == 0
            assert await bell.settled(conn) == 2
    finally:
        await listener.close()
    row = await conn.fetchrow("SELECT * FROM pointers WHERE id = $1", a[0])
    assert (row["enrichment_status"], row["enrichment_attempts"], row["enrichment_error"]) == (
        "pending",
        0,
        None,
    )
    assert await statements.requeue_failed(conn) == 3
    assert await conn.fetchval("SELECT count(*) FROM pointers WHERE enrichment_status = 'failed'") == 0


async def test_eight_concurrent_claimers_never_claim_a_row_twice(
    db_url: str, conn: asyncpg.Connection
) -> None:
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 1000)
    pool = await asyncpg.create_pool(db_url, min_size=8, max_size=8)
    try:

        async def claimer(n: int) -> list[uuid.UUID]:
            got: list[uuid.UUID] = []
            while batch := await statements.claim(pool, 7, f"w{n}", 60):
                got.extend(p.id for p in batch)
            return got

        results = await asyncio.gather(*(claimer(n) for n in range(8)))
    finally:
        await pool.close()
    claimed = [pid for result in results for pid in result]
    assert len(claimed) == 1000 and len(set(claimed)) == 1000
    assert sum(1 for result in results if result) > 1, "the claims should be spread over the connections"


async def test_claim_takes_oldest_first_and_skips_rows_waiting_for_a_retry(conn: asyncpg.Connection) -> None:
    _, page = await make_page(conn)
    ids = await insert_pointers(conn, page, 4)
    await conn.execute(
        "UPDATE pointers SET enrichment_run_after = now() + interval '1 hour' WHERE id = $1", ids[0]
    )
    claimed = await statements.claim(conn, 2, "w", 60)
    assert [p.id for p in claimed] == ids[1:3]
    assert all(p.attempt == 1 and p.page_found and p.discipline_name == "Architectural" for p in claimed)


async def test_a_completion_by_a_worker_that_lost_its_lease_changes_nothing(conn: asyncpg.Connection) -> None:
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 1)
    [stale] = await statements.claim(conn, 1, "stalled", 60)
    await conn.execute("UPDATE pointers SET enrichment_locked_until = now() - interval '1 second'")
    assert await statements.rescue_expired(conn, max_attempts=5, lease_seconds=300) == [(stale.id, "pending")]
    [fresh] = await statements.claim(conn, 1, "healthy", 60)
    assert fresh.attempt == 2
    assert not await statements.complete(conn, stale.fence("stalled"), "late", [], [0.0] * 1024, {})
    assert not await statements.fail(conn, stale.fence("stalled"), "late", {})
    assert await statements.extend_leases(conn, [stale.id], "stalled", 60) == set()
    row = await conn.fetchrow("SELECT * FROM pointers")
    assert (row["enrichment_status"], row["enrichment_locked_by"], row["description"]) == (
        "processing",
        "healthy",
        "",
    )
    assert await statements.complete(
        conn, fresh.fence("healthy"), "done", ["S-101"], [0.5] * 1024, {"stage": "complete"}
    )
    assert await conn.fetchval("SELECT enrichment_status FROM pointers") == "complete"


async def test_rescue_fails_rows_whose_attempts_are_spent_and_spares_live_leases(
    conn: asyncpg.Connection,
) -> None:
    _, page = await make_page(conn)
    ids = await insert_pointers(conn, page, 3)
    await statements.claim(conn, 3, "w", 60)
    await conn.execute(
        "UPDATE pointers SET enrichment_locked_until = now() - interval '1 s', enrichment_attempts = 5 WHERE id = $1",
        ids[0],
    )
    await conn.execute(
        "UPDATE pointers SET enrichment_locked_until = now() - interval '1 s' WHERE id = $1", ids[1]
    )
    assert sorted(await statements.rescue_expired(conn, max_attempts=5, lease_seconds=300)) == sorted(
        [(ids[0], "failed"), (ids[1], "pending")]
    )
    statuses = dict(await conn.fetch("SELECT id, enrichment_status FROM pointers"))
    assert statuses[ids[2]] == "processing"
    assert "stopped renewing its lease" in await conn.fetchval(
        "SELECT enrichment_error FROM pointers WHERE id = $1", ids[0]
    )


async def test_release_gives_the_attempt_back(conn: asyncpg.Connection) -> None:
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 1)
    [claimed] = await statements.claim(conn, 1, "w", 60)
    assert await statements.release(conn, [claimed.id], "w") == [claimed.id]
    row = await conn.fetchrow(
        "SELECT enrichment_status, enrichment_attempts, enrichment_locked_by FROM pointers"
    )
    assert tuple(row) == ("pending", 0, None)
