"""The migration chain: file names in apply order, and every revision ever released upgrades to head.

Customers' version tables hold the released ids, so a database may sit at any of them; the
upgrade from each is checked on a real database against a straight upgrade from empty.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath

import psycopg
import pytest
from alembic.script import ScriptDirectory

from pgqueue_enricher.schema import migrations

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ROOT / "alembic" / "versions"
FROZEN_SQL = ROOT / "sql" / "migrations"

# The chain as released, in apply order: these ids are stored in migrated databases and can
# never change or move.
RELEASED_CHAIN = (
    "0001",
    "0002",
    "0003",
    "0004",
    "0005",
    "0006",
    "0009",
    "0008",
    "0010",
    "0007",
    "0011",
    "0012",
)

_NUMBERED = re.compile(r"^(?P<number>\d{4})_[a-z0-9_]+$")


def apply_order(versions: Path) -> list[tuple[str, str]]:
    """(file stem, revision id) of every revision in `versions`, walked from base to the one head."""
    script = ScriptDirectory(str(versions.parent), version_locations=[str(versions)])
    assert len(script.get_heads()) == 1, f"the chain must have one head, not {script.get_heads()}"
    walked = list(script.walk_revisions("base", "heads"))  # head first
    return [(PurePath(item.path).stem, item.revision) for item in reversed(walked)]


def revision_files(versions: Path) -> list[str]:
    return sorted(path.stem for path in versions.glob("*.py"))


def test_file_name_order_is_apply_order() -> None:
    files = revision_files(VERSIONS)
    assert [stem for stem, _ in apply_order(VERSIONS)] == files


def test_every_revision_file_has_its_own_number_and_its_own_frozen_sql() -> None:
    files = revision_files(VERSIONS)
    assert all(_NUMBERED.match(stem) for stem in files), files
    numbers = [int(stem[:4]) for stem in files]
    assert numbers == list(range(1, len(files) + 1)), "file numbers run 0001, 0002, ... with no gap or twin"
    frozen = sorted(path.stem for path in FROZEN_SQL.glob("0*.sql"))
    assert frozen == files, "each revision file NNNN_topic.py applies sql/migrations/NNNN_topic.sql"


def test_released_ids_keep_their_place_and_new_ids_are_their_file_numbers() -> None:
    order = apply_order(VERSIONS)
    assert tuple(revision for _, revision in order[: len(RELEASED_CHAIN)]) == RELEASED_CHAIN
    for stem, revision in order[len(RELEASED_CHAIN) :]:
        assert revision == stem[:4], f"{stem}.py must have revision {stem[:4]!r}, not {revision!r}"


def test_a_stub_out_of_place_is_caught(tmp_path: Path) -> None:
    """The order check can fail: a file whose parent is the file after it walks out of order."""
    stub = 'revision, down_revision = "{}", {}\n\n\ndef upgrade() -> None: ...\n\n\ndef downgrade() -> None: ...\n'
    (tmp_path / "0001_first.py").write_text(stub.format("a", '"b"'))
    (tmp_path / "0002_second.py").write_text(stub.format("b", "None"))
    assert [stem for stem, _ in apply_order(tmp_path)] == ["0002_second", "0001_first"]
    assert [stem for stem, _ in apply_order(tmp_path)] != revision_files(tmp_path)


_DEFINES = re.compile(
    r"^\s*CREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|TRIGGER|TABLE|INDEX|VIEW)\b", re.I | re.M
)


def test_statements_the_code_runs_live_apart_from_what_migrations_apply() -> None:
    """sql/*.sql: statements only; sql/definitions/: the living definitions, all of them applied."""
    definitions = sorted(f"definitions/{path.name}" for path in (ROOT / "sql" / "definitions").glob("*.sql"))
    assert definitions == sorted(migrations.LIVING_SQL_FILES)
    for path in sorted((ROOT / "sql").glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        assert not _DEFINES.search(text), f"sql/{path.name} defines schema: it belongs in sql/definitions/"
        assert "-- name: upgrade" not in text, f"sql/{path.name} has an upgrade block: sql/definitions/"


def fingerprint(url: str) -> dict[str, list[tuple]]:
    """What the schema holds: tables and columns, indexes, constraints, triggers, functions, grants."""
    statements = {
        "columns": """
            SELECT c.relname, c.relkind, c.relrowsecurity, coalesce(c.relacl::text, ''), a.attname,
                   format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
            FROM pg_class AS c
            JOIN pg_namespace AS n ON n.oid = c.relnamespace
            LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            LEFT JOIN pg_attrdef AS d ON d.adrelid = c.oid AND d.adnum = a.attnum
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'S', 'p')
            ORDER BY 1, 5""",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2",
        "constraints": """
            SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
            FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
        "triggers": """
            SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid)
            FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2""",
        "functions": """
            SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), coalesce(p.proacl::text, '')
            FROM pg_proc AS p
            WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')
              AND NOT EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.objid = p.oid AND d.deptype = 'e')
            ORDER BY 1""",
        "policies": "SELECT tablename, policyname, cmd, qual FROM pg_policies WHERE schemaname = 'public' ORDER BY 1, 2",
    }
    with psycopg.connect(url) as conn:
        return {name: conn.execute(sql).fetchall() for name, sql in statements.items()}  # type: ignore[arg-type]


def chain_ids() -> list[str]:
    return [revision for _, revision in apply_order(VERSIONS)]


@pytest.fixture(scope="module")
def straight(template_url: str) -> dict[str, list[tuple]]:
    """The fingerprint of a straight upgrade from empty: the session's template database.

    Only read, and the connection is closed before any test clones the template again.
    """
    return fingerprint(template_url)


@pytest.mark.parametrize("start", chain_ids())
def test_a_database_at_any_revision_upgrades_to_what_a_straight_upgrade_makes(
    start: str, empty_db_url: str, straight: dict[str, list[tuple]]
) -> None:
    migrations.upgrade(empty_db_url, start)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO pointers (title) VALUES ('waiting since ' || %s)", (start,))
    migrations.upgrade(empty_db_url)
    assert migrations.current_revision(empty_db_url) == migrations.head_revision()
    assert fingerprint(empty_db_url) == straight
    with psycopg.connect(empty_db_url) as conn:
        rows = conn.execute("SELECT title, enrichment_status FROM pointers").fetchall()
    assert rows == [(f"waiting since {start}", "pending")]


def test_the_fingerprint_sees_a_default_an_index_and_a_grant(db_url: str) -> None:
    """The comparison above can fail: each kind of drift a partial upgrade could leave shows."""
    before = fingerprint(db_url)
    changes = {
        "columns": "ALTER TABLE pointers ALTER COLUMN enrichment_attempts SET DEFAULT 1",
        "indexes": "CREATE INDEX drifted ON pointers (title)",
        "functions": "GRANT EXECUTE ON FUNCTION public.requeue_failed_pointers(uuid, uuid[], text) TO PUBLIC",
    }
    with psycopg.connect(db_url, autocommit=True) as conn:
        for part, statement in changes.items():
            conn.execute(statement)
            after = fingerprint(db_url)
            assert after[part] != before[part], statement
            before = after
