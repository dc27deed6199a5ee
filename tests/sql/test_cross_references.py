"""Cross-references lead somewhere: parsed in SQL, resolved at read time within one project.

Everything runs on the real database: parse_cross_reference, normalise_sheet_id and
pointer_title_detail as the migration installed them, and the view
pointer_cross_reference_links over rows inserted the way Pass 1 and the worker write them.
"""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from pgqueue_enricher.providers.references import find_references
from pgqueue_enricher.queue import statements

# (text as drawn, kind, detail, sheet, spec_section)
PARSES = [
    ("SEE 3/A501", "detail", "3", "A501", None),
    ("3/A-501", "detail", "3", "A-501", None),
    ("DETAIL 4 / A3.01", "detail", "4", "A3.01", None),
    ("4/A3.01 SIM.", "detail", "4", "A3.01", None),
    ("Detail 4/A3.01", "detail", "4", "A3.01", None),
    ("SECTION B/S-301", "section", "B", "S-301", None),
    ("Section 2/A-301", "section", "2", "A-301", None),
    ("Elevation 1/A-201", "elevation", "1", "A-201", None),
    ("ELEV. 3/A4.1", "elevation", "3", "A4.1", None),
    ("DETAIL 4 ON SHEET A3.01", "detail", "4", "A3.01", None),
    ("SEE SHEET E-201", "sheet", None, "E-201", None),
    ("REF. E-201", "sheet", None, "E-201", None),
    ("S101", "sheet", None, "S101", None),
    ("S-101", "sheet", None, "S-101", None),
    ("a-501", "sheet", None, "A-501", None),
    ("SHT A2", "sheet", None, "A2", None),
    ("E-601A", "sheet", None, "E-601A", None),
    ("A5O1", "sheet", None, "A501", None),  # OCR read the zero as a letter O
    ("SEE 2/S-1O1", "detail", "2", "S-101", None),
    ("SPEC SECTION 09 21 16", "spec_section", None, None, "09 21 16"),
    ("09 21 16", "spec_section", None, None, "09 21 16"),
    ("092116", "spec_section", None, None, "09 21 16"),
    ("SECTION 09 21 16.13", "spec_section", None, None, "09 21 16.13"),
    ("DOOR D-101", "tag", "D-101", None, None),
    ("WINDOW TYPE W3", "tag", "W3", None, None),
    ("D-101", "sheet", None, "D-101", None),  # a demolition sheet unless the text says door
    ("TYP. SEE STRUCT.", "unknown", None, None, None),
    ("Structural general notes", "unknown", None, None, None),
    ("COORD. W/ ARCH", "unknown", None, None, None),
    ("ASTM A615", "unknown", None, None, None),
    ("R-13.5", "unknown", None, None, None),
    ('5/8" TYPE X', "unknown", None, None, None),
    ("", "unknown", None, None, None),
]


async def test_parse_cross_reference_reads_what_drawings_actually_say(conn: asyncpg.Connection) -> None:
    wrong = []
    for text, *expected in PARSES:
        rows = await conn.fetch("SELECT * FROM parse_cross_reference($1)", text)
        got = [tuple(row) for row in rows]
        if got != [tuple(expected)]:
            wrong.append((text, got, tuple(expected)))
    assert wrong == []
    assert [tuple(r) for r in await conn.fetch("SELECT * FROM parse_cross_reference(NULL)")] == [
        ("unknown", None, None, None)
    ]


async def test_the_canonical_strings_the_worker_writes_parse_back_to_what_they_name(
    conn: asyncpg.Connection,
) -> None:
    text = "SEE 3/A501. SECTION 2/A-301. ELEVATION 1/A-201. SEE s-101 AND A3.01. PER 09 21 16."
    canonical = find_references(text)
    assert canonical == ["Detail 3/A501", "Section 2/A-301", "Elevation 1/A-201", "A3.01", "09 21 16"]
    parsed = [tuple(await conn.fetchrow("SELECT * FROM parse_cross_reference($1)", c)) for c in canonical]
    assert parsed == [
        ("detail", "3", "A501", None),
        ("section", "2", "A-301", None),
        ("elevation", "1", "A-201", None),
        ("sheet", None, "A3.01", None),
        ("spec_section", None, None, "09 21 16"),
    ]


async def test_sheet_ids_match_across_case_spaces_and_dashes_but_not_across_a_dot(
    conn: asyncpg.Connection,
) -> None:
    async def key(sheet: str) -> str:
        return await conn.fetchval("SELECT normalise_sheet_id($1)", sheet)

    assert {await key(s) for s in ("A-501", "A501", "A 501", "a-501", "A_501", "A.501")} == {"A501"}
    assert await key("A3.01") == await key("A-3.01") == await key("a 3.01") == "A3.01"
    assert await key("A3.01") != await key("A301")
    assert await key("A-3.01.") == "A3.01"


@pytest.mark.parametrize(
    ("title", "detail"),
    [
        ("Detail 4", "4"),
        ("Detail 4 - Wall section", "4"),
        ("4 - WALL SECTION", "4"),
        ("4/A3.01", "4"),
        ("SECTION B", "B"),
        ("Wall section 12", "12"),
        ("Typical wall section", None),
        ("2 HR RATED WALL", None),
        ("Section at grid A", None),
    ],
)
async def test_a_pointer_title_names_its_detail(
    conn: asyncpg.Connection, title: str, detail: str | None
) -> None:
    assert await conn.fetchval("SELECT pointer_title_detail($1)", title) == detail


async def _project(conn: asyncpg.Connection, name: str) -> tuple[uuid.UUID, uuid.UUID]:
    project = await conn.fetchval("INSERT INTO projects (user_id, name) VALUES ('u', $1) RETURNING id", name)
    discipline = await conn.fetchval(
        "INSERT INTO disciplines (project_id, name, display_name) VALUES ($1, 'arch', 'Architectural') RETURNING id",
        project,
    )
    return project, discipline


async def _page(conn: asyncpg.Connection, discipline: uuid.UUID, name: str) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO pages (discipline_id, page_name) VALUES ($1, $2) RETURNING id", discipline, name
    )


async def _pointer(
    conn: asyncpg.Connection, page: uuid.UUID, title: str, references: list[str], status: str = "complete"
) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO pointers (page_id, title, enrichment_status, cross_references) "
        "VALUES ($1, $2, $3, $4::jsonb) RETURNING id",
        page,
        title,
        status,
        json.dumps(references),
    )


async def _links(conn: asyncpg.Connection, pointer: uuid.UUID) -> dict[str, tuple]:
    rows = await conn.fetch(
        "SELECT reference, kind, detail, sheet, target_page_id, target_pointer_id, project_id "
        "FROM pointer_cross_reference_links WHERE pointer_id = $1",
        pointer,
    )
    return {row["reference"]: tuple(row)[1:] for row in rows}


async def test_references_resolve_to_pages_and_details_of_their_own_project_at_read_time(
    conn: asyncpg.Connection,
) -> None:
    project, discipline = await _project(conn, "Tower")
    s101 = await _page(conn, discipline, "S-101")
    a301 = await _page(conn, discipline, "A3.01")
    e201 = await _page(conn, discipline, "E-201")
    wall = await _pointer(conn, a301, "Detail 4 - Wall section", [])
    await _pointer(conn, a301, "Detail 5 - Parapet", [])
    source_page = await _page(conn, discipline, "A-101")
    references = ["S-101", "Detail 4/A3.01", "E-201", "09 21 16", "A-999"]
    source = await _pointer(conn, source_page, "Plan note", references)
    # The same sheet in another customer's project must never receive a link from this one.
    other_project, other_discipline = await _project(conn, "Someone else's")
    other_s101 = await _page(conn, other_discipline, "S-101")
    await _page(conn, other_discipline, "A999")

    links = await _links(conn, source)
    assert links == {
        "S-101": ("sheet", None, "S-101", s101, None, project),
        "Detail 4/A3.01": ("detail", "4", "A3.01", a301, wall, project),
        "E-201": ("sheet", None, "E-201", e201, None, project),
        "09 21 16": ("spec_section", None, None, None, None, project),
        "A-999": ("sheet", None, "A-999", None, None, project),
    }
    unresolved = await statements.unresolved_references(conn)
    assert unresolved == [{"project_id": str(project), "sheet": "A-999", "count": 1}]

    # The sheet is uploaded a week later: the reference resolves with no re-enrichment.
    a999 = await _page(conn, discipline, "A999")
    links = await _links(conn, source)
    assert links["A-999"] == ("sheet", None, "A-999", a999, None, project)
    assert await statements.unresolved_references(conn) == []

    cross_project = await conn.fetchval(
        "SELECT count(*) FROM pointer_cross_reference_links AS l "
        "JOIN pages AS pg ON pg.id = l.target_page_id JOIN disciplines AS d ON d.id = pg.discipline_id "
        "WHERE d.project_id <> l.project_id"
    )
    assert cross_project == 0
    assert other_s101 not in {link[3] for link in links.values()}
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM pointer_cross_reference_links WHERE project_id = $1", other_project
        )
        == 0
    )


async def test_only_complete_pointers_have_links_and_malformed_lists_are_skipped(
    conn: asyncpg.Connection,
) -> None:
    _, discipline = await _project(conn, "P")
    page = await _page(conn, discipline, "S-101")
    pending = await _pointer(conn, page, "x", ["S-101"], status="pending")
    complete = await _pointer(conn, page, "y", ["S-101"])
    odd = await conn.fetchval(
        "INSERT INTO pointers (page_id, title, enrichment_status, cross_references) "
        "VALUES ($1, 'z', 'complete', '{\"sheet\": \"S-101\"}'::jsonb) RETURNING id",
        page,
    )
    assert await _links(conn, pending) == {}
    assert await _links(conn, odd) == {}
    assert (await _links(conn, complete))["S-101"][3] == page


async def test_two_pages_of_one_sheet_resolve_to_one_link(conn: asyncpg.Connection) -> None:
    _, discipline = await _project(conn, "P")
    await _page(conn, discipline, "A-501")
    exact = await _page(conn, discipline, "A501")
    source = await _pointer(conn, exact, "note", ["A501"])
    links = await conn.fetch(
        "SELECT target_page_id FROM pointer_cross_reference_links WHERE pointer_id = $1", source
    )
    assert [row["target_page_id"] for row in links] == [exact]


async def test_the_references_command_and_status_show_links_and_sheets_not_uploaded(
    db_url: str, conn: asyncpg.Connection
) -> None:
    from tests.e2e.test_cli import cli

    project, discipline = await _project(conn, "Tower")
    page = await _page(conn, discipline, "S-101")
    await _pointer(conn, page, "Plan note", ["S-101", "A-999"])
    env = {"DATABASE_URL": db_url}
    report = json.loads(cli("references", "--project", str(project), "--json", env=env, check=True).stdout)
    assert {(link["reference"], link["target_page_name"]) for link in report["links"]} == {
        ("S-101", "S-101"),
        ("A-999", None),
    }
    assert report["unresolved"] == [{"project_id": str(project), "sheet": "A-999", "count": 1}]
    text = cli("references", env=env, check=True).stdout
    assert "A-999 -> sheet A-999 not uploaded" in text and "S-101 -> page S-101" in text
    status = json.loads(cli("status", "--json", env=env, check=True).stdout)
    assert status["unresolved_references"] == report["unresolved"]
    assert "sheets referenced but not uploaded: A-999 (1)" in cli("status", env=env, check=True).stdout
    bad = cli("references", "--project", "not-a-uuid", env=env)
    assert bad.returncode == 2 and "not a UUID" in bad.stderr
