"""Reading the links of one pointer or one project stays index-driven at 100,000 pointers.

The table is built once for the module (200 projects of 40 sheets, 100,000 complete pointers
each naming a sheet and a detail of its own project, plus one never uploaded), then
analysed, so the planner sees production-like statistics. Plain EXPLAIN: nothing runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from pgqueue_enricher.demo import embedded_postgres as database
from pgqueue_enricher.schema.sqlfiles import query
from tests.conftest import throwaway_database

PROJECTS = 200
SHEETS = 40
POINTERS = 100_000


@pytest.fixture(scope="module")
def linked_db(pg_server: database.DatabaseHandle, template_url: str) -> Iterator[str]:
    with throwaway_database(pg_server, template_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            # The scheduling triggers only matter to pending rows; these are all complete.
            conn.execute("ALTER TABLE pointers DISABLE TRIGGER USER")
            conn.execute(
                """
                WITH p AS (INSERT INTO projects (user_id, name)
                           SELECT 'load', 'project ' || g FROM generate_series(1, %s) g RETURNING id)
                INSERT INTO disciplines (project_id, name, display_name)
                SELECT id, 'arch', 'Architectural' FROM p
                """,
                (PROJECTS,),
            )
            conn.execute(
                """
                INSERT INTO pages (discipline_id, page_name)
                SELECT d.id, CASE WHEN s %% 2 = 0 THEN 'A-' ELSE 'S' END || (100 + s)
                FROM disciplines d, generate_series(1, %s) s
                """,
                (SHEETS,),
            )
            conn.execute(
                """
                CREATE TEMP TABLE load_pages AS
                SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM pages
                """
            )
            conn.execute(
                """
                INSERT INTO pointers (page_id, title, enrichment_status, cross_references)
                SELECT lp.id, 'Detail ' || (g %% 9 + 1), 'complete',
                       jsonb_build_array('A' || (100 + 2 * (g %% 20 + 1)), 'Detail 3/S-' || (101 + 2 * (g %% 20)),
                                         '09 21 16', 'A-999')
                FROM generate_series(1, %s) g JOIN load_pages lp ON lp.n = g %% %s
                """,
                (POINTERS, PROJECTS * SHEETS),
            )
            conn.execute("ALTER TABLE pointers ENABLE TRIGGER USER")
            conn.execute("VACUUM ANALYZE projects, disciplines, pages, pointers")
        yield url


def plan(url: str, sql: str, *params: object) -> str:
    with psycopg.connect(url) as conn:
        return "\n".join(row[0] for row in conn.execute("EXPLAIN " + sql, params).fetchall())


def some_ids(url: str) -> tuple[object, object]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT p.id, d.project_id FROM pointers p JOIN pages pg ON pg.id = p.page_id "
            "JOIN disciplines d ON d.id = pg.discipline_id LIMIT 1"
        ).fetchone()


@pytest.mark.slow
def test_the_links_of_one_pointer_and_of_one_project_are_read_through_indexes(linked_db: str) -> None:
    pointer, project = some_ids(linked_db)
    with psycopg.connect(linked_db) as conn:
        rows = conn.execute(
            "SELECT reference, target_page_id IS NOT NULL, target_pointer_id IS NOT NULL "
            "FROM pointer_cross_reference_links WHERE pointer_id = %s",
            (pointer,),
        ).fetchall()
    # The data resolves as built: two same-project sheets, a detail on one, and a missing sheet.
    kinds = sorted((reference[:2], resolved, detail) for reference, resolved, detail in rows)
    assert kinds == [("09", False, False), ("A-", False, False), ("A1", True, False), ("De", True, True)]

    for where, value in (("pointer_id", pointer), ("project_id", project)):
        text = plan(linked_db, f"SELECT * FROM pointer_cross_reference_links WHERE {where} = %s", value)  # noqa: S608 (a constant column)
        assert "Seq Scan on pointers" not in text, text
        assert "Seq Scan on pages" not in text, text
        assert "idx_pages_discipline_sheet" in text, text

    # The named statement takes $1/$2 (asyncpg); psycopg passes them as %s.
    statement = "\n".join(
        line for line in query("cross_references_unresolved").splitlines() if not line.startswith("--")
    )
    text = plan(linked_db, statement.replace("$1", "%s").replace("$2", "%s"), project, project, 50)
    assert "Seq Scan on pointers" not in text, text
    assert "Seq Scan on pages" not in text, text


@pytest.mark.slow
def test_the_plan_check_can_fail_without_the_sheet_index(linked_db: str) -> None:
    pointer, _ = some_ids(linked_db)
    with psycopg.connect(linked_db) as conn:
        conn.execute("DROP INDEX idx_pages_discipline_sheet")  # rolled back below
        text = "\n".join(
            row[0]
            for row in conn.execute(
                "EXPLAIN SELECT * FROM pointer_cross_reference_links WHERE pointer_id = %s", (pointer,)
            ).fetchall()
        )
        conn.rollback()
    assert "idx_pages_discipline_sheet" not in text
