"""Fair, prioritised claims in SQL on a real Postgres: turns, lanes, requeue into a lane."""

from __future__ import annotations

import asyncpg
import pytest

from pgqueue_enricher.queue import statements
from pgqueue_enricher.schema.sqlfiles import blocks
from tests.support.helpers import insert_pointers, make_page


async def claimed_titles(conn: asyncpg.Connection, limit: int) -> list[str]:
    return [pointer.title for pointer in await statements.claim(conn, limit, "w", 60)]


async def test_a_project_arriving_behind_a_backlog_interleaves_with_it_row_for_row(
    conn: asyncpg.Connection,
) -> None:
    _, page_a = await make_page(conn)
    _, page_b = await make_page(conn)
    await insert_pointers(conn, page_a, 10, title_prefix="A")
    assert await claimed_titles(conn, 2) == ["A 1", "A 2"]
    await insert_pointers(conn, page_b, 3, title_prefix="B")
    assert await claimed_titles(conn, 6) == ["A 3", "B 1", "A 4", "B 2", "A 5", "B 3"]
    assert await claimed_titles(conn, 10) == ["A 6", "A 7", "A 8", "A 9", "A 10"], "work-conserving"


async def test_a_project_inserting_page_by_page_keeps_one_share_not_one_per_statement(
    conn: asyncpg.Connection,
) -> None:
    project_a, page_a = await make_page(conn)
    _, page_a2 = await make_page(conn, project_id=project_a, page_name="A-502")
    _, page_b = await make_page(conn)
    await insert_pointers(conn, page_a, 3, title_prefix="A")
    await insert_pointers(conn, page_a2, 3, title_prefix="A2")
    await insert_pointers(conn, page_b, 3, title_prefix="B")
    titles = await claimed_titles(conn, 6)
    assert titles == ["A 1", "B 1", "A 2", "B 2", "A 3", "B 3"]


async def test_interactive_rows_are_claimed_before_any_backfill_row(conn: asyncpg.Connection) -> None:
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 5, title_prefix="Legacy")
    await conn.execute("UPDATE pointers SET enrichment_lane = 'backfill'")
    await insert_pointers(conn, page, 2, title_prefix="Fresh")
    claimed = await statements.claim(conn, 3, "w", 60)
    assert [(p.title, p.lane) for p in claimed] == [
        ("Fresh 1", "interactive"),
        ("Fresh 2", "interactive"),
        ("Legacy 1", "backfill"),
    ]


async def test_rows_waiting_for_a_retry_stay_skipped_and_keep_their_turn(conn: asyncpg.Connection) -> None:
    _, page = await make_page(conn)
    ids = await insert_pointers(conn, page, 3)
    await conn.execute(
        "UPDATE pointers SET enrichment_run_after = now() + interval '1 hour' WHERE id = $1", ids[0]
    )
    assert await claimed_titles(conn, 5) == ["Detail 2", "Detail 3"]
    await conn.execute(
        "UPDATE pointers SET enrichment_run_after = now() - interval '1 s' WHERE id = $1", ids[0]
    )
    [due] = await statements.claim(conn, 5, "w", 60)
    assert due.id == ids[0]


async def test_the_project_follows_the_page_on_insert_and_when_the_page_changes(
    conn: asyncpg.Connection,
) -> None:
    project_a, page_a = await make_page(conn)
    project_b, page_b = await make_page(conn)
    [pointer] = await insert_pointers(conn, page_a, 1)
    assert await conn.fetchval("SELECT enrichment_project_id FROM pointers") == project_a
    await conn.execute("UPDATE pointers SET page_id = $1 WHERE id = $2", page_b, pointer)
    assert await conn.fetchval("SELECT enrichment_project_id FROM pointers") == project_b
    await conn.execute("INSERT INTO pointers (title) VALUES ('no page')")
    assert await conn.fetchval("SELECT enrichment_project_id FROM pointers WHERE title = 'no page'") is None


async def test_an_unknown_lane_is_refused_by_the_database(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("INSERT INTO pointers (title, enrichment_lane) VALUES ('x', 'urgent')")
    with pytest.raises(asyncpg.InvalidParameterValueError, match="unknown lane 'urgent'"):
        await statements.requeue_to_lane(conn, "urgent")


async def test_requeue_to_lane_moves_a_projects_queue_and_complete_rows_only_when_asked(
    conn: asyncpg.Connection,
) -> None:
    project_a, page_a = await make_page(conn)
    _, page_b = await make_page(conn)
    pending = await insert_pointers(conn, page_a, 2)
    done = await insert_pointers(conn, page_a, 2, status="complete")
    failed = await insert_pointers(conn, page_a, 1, status="failed")
    await conn.execute("UPDATE pointers SET enrichment_attempts = 5 WHERE id = $1", failed[0])
    other = await insert_pointers(conn, page_b, 1)
    assert await statements.requeue_to_lane(conn, "backfill", project_id=project_a) == 3
    lanes = dict(
        await conn.fetch("SELECT id, enrichment_lane FROM pointers WHERE enrichment_status = 'pending'")
    )
    assert lanes == {**dict.fromkeys(pending + failed, "backfill"), other[0]: "interactive"}
    assert await conn.fetchval("SELECT enrichment_attempts FROM pointers WHERE id = $1", failed[0]) == 0
    assert (
        await statements.requeue_to_lane(conn, "backfill", pointer_ids=[done[0]], include_complete=True) == 1
    )
    assert await conn.fetchval("SELECT enrichment_status FROM pointers WHERE id = $1", done[1]) == "complete"
    # Every complete row, for a re-enrichment after a prompt change.
    assert await statements.requeue_to_lane(conn, "backfill", include_complete=True) == 6
    assert await conn.fetchval("SELECT count(*) FROM pointers WHERE enrichment_status = 'complete'") == 0


async def test_rows_requeued_from_complete_get_a_fresh_turn_instead_of_jumping_the_queue(
    conn: asyncpg.Connection,
) -> None:
    _, page_a = await make_page(conn)
    _, page_b = await make_page(conn)
    await insert_pointers(conn, page_a, 4, title_prefix="A")
    await claimed_titles(conn, 4)
    await conn.execute("UPDATE pointers SET enrichment_status = 'complete'")
    await insert_pointers(conn, page_b, 6, title_prefix="B")
    await claimed_titles(conn, 3)
    await conn.execute("UPDATE pointers SET enrichment_status = 'pending' WHERE title LIKE 'A %'")
    # A 1 enters at the lane's lowest pending turn (B 4's), and is older: it goes first.
    assert await claimed_titles(conn, 4) == ["A 1", "B 4", "A 2", "B 5"]


async def test_rerunning_the_living_scheduling_sql_changes_no_function_or_trigger(
    conn: asyncpg.Connection,
) -> None:
    definitions = """
        SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
        WHERE p.proname IN ('pointers_schedule', 'requeue_pointers_to_lane')
        UNION ALL
        SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t
        WHERE t.tgname LIKE 'pointers_schedule%'
        ORDER BY 1
    """
    before = await conn.fetch(definitions)
    assert len(before) == 4
    await conn.execute(blocks("definitions/scheduling.sql")["upgrade"])
    assert await conn.fetch(definitions) == before
