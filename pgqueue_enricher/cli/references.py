"""`pgqueue-enricher references [--project UUID] [--json]`: where each cross-reference leads.

Reads the view pointer_cross_reference_links (sql/definitions/cross_references.sql): every reference of
a complete pointer, the page and detail of the same project it resolves to, and the sheets
referenced that no page of the project has yet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from pgqueue_enricher.queue import statements
from pgqueue_enricher.settings import Settings

LINK_LIMIT = 1000
UNRESOLVED_LIMIT = 50


def add_parser(commands: Any, uuid_type: Callable[[str], uuid.UUID]) -> None:
    """Register the `references` subcommand on the CLI's subparsers."""
    parser = commands.add_parser(
        "references", help="cross-references of complete pointers, what they link to, and sheets not uploaded"
    )
    parser.add_argument("--project", type=uuid_type, help="only this project")
    parser.add_argument("--json", action="store_true", help="print only JSON on stdout")


def run(
    args: argparse.Namespace,
    settings_of: Callable[[argparse.Namespace], Settings],
    with_connection: Callable[[Settings, Any], Any],
) -> int:
    """The handler: JSON `{"links": [...], "unresolved": [...]}` or a short listing."""
    settings = settings_of(args)

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        return {
            "links": await statements.cross_reference_links(conn, args.project, LINK_LIMIT),
            "unresolved": await statements.unresolved_references(conn, args.project, UNRESOLVED_LIMIT),
        }

    report = asyncio.run(with_connection(settings, work))
    if args.json:
        print(json.dumps(report))
        return 0
    for line in listing(report):
        print(line)
    return 0


def _target(link: dict[str, Any]) -> str:
    if link["kind"] == "spec_section":
        return "specification section"
    if link["kind"] in ("tag", "unknown"):
        return link["kind"]
    if link["target_page_id"] is None:
        return f"sheet {link['sheet']} not uploaded"
    target = f"page {link['target_page_name']}"
    if link["target_pointer_id"] is not None:
        target += f", pointer {link['target_pointer_title']!r}"
    return target


def listing(report: dict[str, Any]) -> list[str]:
    links = report["links"]
    lines = [
        f"{len(links)} references" + (f" (first {LINK_LIMIT} shown)" if len(links) >= LINK_LIMIT else "")
    ]
    for link in links:
        lines.append(f"  {link['page_name']} / {link['title']}: {link['reference']} -> {_target(link)}")
    if report["unresolved"]:
        lines.append("sheets referenced that no page of the project has:")
        for row in report["unresolved"]:
            lines.append(f"  {row['count']:>6}  {row['sheet']}  (project {row['project_id']})")
    else:
        lines.append("every referenced sheet has a page")
    return lines
