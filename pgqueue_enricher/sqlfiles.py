"""Loads the SQL that lives in `sql/`, the single source of truth for what the database runs.

A file is split into named blocks by `-- name: <block>` lines, so a reviewer reads SQL as
SQL and the code asks for statements by name (`query("pointers_claim")`).
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

_BLOCK = re.compile(r"^--\s*name:\s*(?P<name>[a-z0-9_]+)\s*$", re.M)


def sql_dir() -> Path:
    """`sql/` beside the package in a source tree (how the project is installed and shipped)."""
    override = os.environ.get("PGQUEUE_ENRICHER_SQL_DIR")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "sql"


@cache
def blocks(relative_path: str) -> dict[str, str]:
    path = sql_dir() / relative_path
    if not path.is_file():
        raise FileNotFoundError(f"SQL file {path} is missing: is the source tree complete?")
    text = path.read_text(encoding="utf-8")
    found: dict[str, str] = {}
    matches = list(_BLOCK.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        found[match["name"]] = text[match.end() : end].strip() + "\n"
    return found


def query(name: str) -> str:
    """A named statement from sql/queries.sql."""
    try:
        return blocks("queries.sql")[name]
    except KeyError:
        raise KeyError(f"no statement named {name!r} in sql/queries.sql") from None


def migration_sql(relative_path: str, direction: str) -> str:
    """The `upgrade` or `downgrade` block of a file applied by a migration."""
    return blocks(relative_path)[direction]
