"""How well cross-references are parsed and resolved, on a held-out set and a real database.

Loads bench/reference_set.py into a fresh migrated database (DATABASE_URL's server, else a
container, else embedded Postgres): a project of 40 sheets with detail pointers, a twin
project with the same sheets, and one complete pointer per reference string. Then reads
pointer_cross_reference_links and compares with the expected parse and targets.

- Parsing: a string counts as found when parse_cross_reference gives it a kind other than
  `unknown`; it is right when (kind, detail, sheet, spec_section) equals the expected one.
  Precision = right / found, recall = right / expected to be found.
- Resolution: each expected target (page, and detail pointer) is a link to make. A link made
  is right when it is the expected one; a link to anything else (another sheet, another
  project, a page where none was expected) is wrong. Precision = right / made, recall =
  right / expected.

Exits 1 when a figure is under its target (parsing 0.97/0.95, resolution 0.98/0.90).

    .venv/bin/python bench/references_quality.py [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import migrated_database  # noqa: E402
from bench.reference_set import DETAIL_POINTERS, REFERENCES, SHEETS  # noqa: E402

TARGETS = {
    "parsing precision": 0.97,
    "parsing recall": 0.95,
    "resolution precision": 0.98,
    "resolution recall": 0.90,
}


async def load_project(conn: asyncpg.Connection, name: str) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    project = await conn.fetchval(
        "INSERT INTO projects (user_id, name) VALUES ('bench', $1) RETURNING id", name
    )
    discipline = await conn.fetchval(
        "INSERT INTO disciplines (project_id, name, display_name) VALUES ($1, 'all', 'All') RETURNING id",
        project,
    )
    pages = {}
    for sheet in SHEETS:
        pages[sheet] = await conn.fetchval(
            "INSERT INTO pages (discipline_id, page_name) VALUES ($1, $2) RETURNING id", discipline, sheet
        )
    for sheet, titles in DETAIL_POINTERS.items():
        for title in titles:
            await conn.execute(
                "INSERT INTO pointers (page_id, title, enrichment_status) VALUES ($1, $2, 'pending')",
                pages[sheet],
                title,
            )
    return project, pages


def ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 1.0


async def measure(url: str, verbose: bool) -> dict[str, float]:
    conn = await asyncpg.connect(url)
    try:
        project, pages = await load_project(conn, "Bench tower")
        await load_project(conn, "Twin tower")  # the same sheet names, another customer
        sources = {}
        for index, expected in enumerate(REFERENCES):
            sources[index] = await conn.fetchval(
                "INSERT INTO pointers (page_id, title, enrichment_status, cross_references) "
                "VALUES ($1, $2, 'complete', $3::jsonb) RETURNING id",
                pages["G-001"],
                f"source {index}",
                json.dumps([expected.text]),
            )
        rows = await conn.fetch(
            "SELECT l.pointer_id, l.kind, l.detail, l.sheet, l.target_page_id, l.target_pointer_id, "
            "(SELECT x.spec_section FROM parse_cross_reference(l.reference) AS x) AS spec_section "
            "FROM pointer_cross_reference_links AS l WHERE l.project_id = $1",
            project,
        )
        page_names = {
            row["id"]: row["page_name"] for row in await conn.fetch("SELECT id, page_name FROM pages")
        }
        own_pages = set(pages.values())
        titles = {row["id"]: row["title"] for row in await conn.fetch("SELECT id, title FROM pointers")}
    finally:
        await conn.close()

    by_pointer = {row["pointer_id"]: row for row in rows}
    parse_found = parse_right = parse_expected = 0
    links_made = links_right = links_expected = 0
    misses: list[str] = []
    for index, expected in enumerate(REFERENCES):
        row = by_pointer.get(sources[index])
        got = (
            (row["kind"], row["detail"], row["sheet"], row["spec_section"])
            if row
            else ("unknown", None, None, None)
        )
        want = (expected.kind, expected.detail, expected.sheet, expected.spec_section)
        found = got[0] != "unknown"
        parse_found += found
        parse_expected += expected.kind != "unknown"
        if found and got == want:
            parse_right += 1
        elif got != want:
            misses.append(f"parse   {expected.text!r}: got {got}, expected {want}")

        page = row["target_page_id"] if row else None
        pointer = row["target_pointer_id"] if row else None
        page_ok = page in own_pages and page_names.get(page) == expected.target_page
        pointer_ok = pointer is not None and titles.get(pointer) == expected.target_pointer and page_ok
        links_expected += (expected.target_page is not None) + (expected.target_pointer is not None)
        links_made += (page is not None) + (pointer is not None)
        links_right += (page is not None and page_ok) + (pointer is not None and pointer_ok)
        if (page is not None and not page_ok) or (page is None and expected.target_page is not None):
            misses.append(
                f"page    {expected.text!r}: got {page_names.get(page)}, expected {expected.target_page}"
            )
        if (pointer is not None and not pointer_ok) or (
            pointer is None and expected.target_pointer is not None
        ):
            misses.append(
                f"pointer {expected.text!r}: got {titles.get(pointer)}, expected {expected.target_pointer}"
            )

    if verbose:
        for line in misses:
            print(line)
    print(
        f"{len(REFERENCES)} reference strings, {len(SHEETS)} sheets; "
        f"{parse_expected} strings name something, {links_expected} links expected"
    )
    return {
        "parsing precision": ratio(parse_right, parse_found),
        "parsing recall": ratio(parse_right, parse_expected),
        "resolution precision": ratio(links_right, links_made),
        "resolution recall": ratio(links_right, links_expected),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--verbose", action="store_true", help="list every wrong parse and link")
    args = parser.parse_args()
    with migrated_database("pgqe_bench_references") as url:
        figures = asyncio.run(measure(url, args.verbose))
    failed = False
    for name, value in figures.items():
        target = TARGETS[name]
        ok = value >= target
        failed |= not ok
        print(f"{name:>22}: {value:.3f}  (target {target:.2f}{'' if ok else ', MISSED'})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
