"""Loads the SQL that lives in `sql/`, the single source of truth for what the database runs.

Three kinds of file, three places: `sql/*.sql` holds the statements the code runs
(`queries.sql` for the worker and the CLI); `sql/definitions/` the current definitions of the
functions and triggers, which only migrations install; `sql/migrations/` the frozen copies
the released revisions apply.

The files ship inside the package (`pgqueue_enricher/_sql`, a link to the repository's
`sql/` in a checkout, real files in a wheel), so they are read with importlib.resources and
never from a path beside the source tree. A file is split into named blocks by
`-- name: <block>` lines, so a reviewer reads SQL as SQL and the code asks for statements
by name (`query("pointers_claim")`). A block may take in another block of its file with a
line `-- include: <block>`, so that SQL written once stays written once.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable

_BLOCK = re.compile(r"^--\s*name:\s*(?P<name>[a-z0-9_]+)\s*$", re.M)
_INCLUDE = re.compile(r"^--\s*include:\s*(?P<name>[a-z0-9_]+)\s*$", re.M)


def sql_root() -> Traversable:
    return resources.files("pgqueue_enricher") / "_sql"


@cache
def blocks(relative_path: str) -> dict[str, str]:
    resource = sql_root().joinpath(*relative_path.split("/"))
    if not resource.is_file():
        # Not a database problem: the installation itself is incomplete, and retrying cannot help.
        raise FileNotFoundError(
            f"SQL file {relative_path} is missing from the installed package: reinstall pgqueue-enricher"
        )
    text = resource.read_text(encoding="utf-8")
    found: dict[str, str] = {}
    matches = list(_BLOCK.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        found[match["name"]] = text[match.end() : end].strip() + "\n"
    # One level: an included block includes nothing itself.
    return {name: _INCLUDE.sub(lambda m: found[m["name"]].rstrip("\n"), body) for name, body in found.items()}


def query(name: str) -> str:
    """A named statement from sql/queries.sql."""
    try:
        return blocks("queries.sql")[name]
    except KeyError:
        raise KeyError(f"no statement named {name!r} in sql/queries.sql") from None


def models_query(name: str) -> str:
    """A named statement from sql/models.sql (model stamps, stale rows, the embedding switch)."""
    try:
        return blocks("models.sql")[name]
    except KeyError:
        raise KeyError(f"no statement named {name!r} in sql/models.sql") from None


def migration_sql(relative_path: str, direction: str) -> str:
    """The `upgrade` or `downgrade` block of a file applied by a migration."""
    return blocks(relative_path)[direction]
