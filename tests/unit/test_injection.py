"""SQL injection: every statement is parameterised, and hostile values that reach SQL through
the CLI, the settings or the rows themselves are stored and matched verbatim.

The only SQL built by string formatting interpolates identifiers that are constants or
derived from a hash; they are listed in IDENTIFIER_ONLY and checked to be identifiers.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import os
import re
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest
import structlog

from pgqueue_enricher.demo import command, rows
from pgqueue_enricher.queue import listener
from pgqueue_enricher.schema import migrations
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer, tiny_png
from tests.support.harness import RowWatcher, running_worker, settings_env, worker_settings
from tests.support.helpers import make_page

ROOT = Path(__file__).resolve().parents[2]
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
SQL_WORD = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|NOTIFY|LISTEN|DROP|CREATE|ALTER|GRANT|TRUNCATE|COPY|EXECUTE)\b"
)
EXECUTING = {
    "execute",
    "executemany",
    "fetch",
    "fetchrow",
    "fetchval",
    "copy_to_table",
    "copy_records_to_table",
}

# SQL built by formatting, (file, interpolated expression): identifiers only, never values.
IDENTIFIER_ONLY = {
    ("pgqueue_enricher/demo/command.py", "DEMO_DATABASE"),  # DROP/CREATE DATABASE: a module constant
    ("pgqueue_enricher/queue/listener.py", "self.health_channel"),  # NOTIFY: "pgqe_health_" + sha1 hex
    ("pgqueue_enricher/schema/migrations.py", "VERSION_TABLE"),  # SELECT ... FROM: a module constant
}
# Statements passed to an executing call as a variable, (file, expression): each holds SQL
# from sql/*.sql or a constant sqlalchemy text() with bound parameters.
NON_LITERAL_STATEMENTS = {
    ("pgqueue_enricher/experience.py", "statement"),  # a constant text() with a bound :project_id
    ("pgqueue_enricher/schema/migrations.py", "sql"),  # a block of sql/*.sql, applied verbatim by a migration
    ("pgqueue_enricher/queue/pipeline.py", "pointer.png_path"),  # CropStore.fetch, not SQL
    ("pgqueue_enricher/cli/compare.py", "row['png_path']"),  # CropStore.fetch, not SQL
    # ALTER ... TYPE vector(N): sql/models.sql's block with a quoted schema and an int formatted in
    ("pgqueue_enricher/model_switch.py", "retype"),
    (
        "pgqueue_enricher/admission/provider_state.py",
        "query(name)",
    ),  # a named block of sql/provider_state.sql
}

HOSTILE = "'; DROP TABLE pointers; --"


def python_sources() -> list[Path]:
    return sorted([*(ROOT / "pgqueue_enricher").rglob("*.py"), *(ROOT / "alembic").rglob("*.py")])


def sql_built_by_formatting(path: Path) -> list[tuple[str, int, str]]:
    """(kind, line, expression) of every string with SQL in it that is built from values."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if SQL_WORD.search(text):
                for value in node.values:
                    if isinstance(value, ast.FormattedValue):
                        found.append(("f-string", node.lineno, ast.unparse(value.value)))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
            for side, other in ((node.left, node.right), (node.right, node.left)):
                if (
                    isinstance(side, ast.Constant)
                    and isinstance(side.value, str)
                    and SQL_WORD.search(side.value)
                ):
                    if not (isinstance(other, ast.Constant) and isinstance(other.value, str)):
                        found.append(("% or +", node.lineno, ast.unparse(other)))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
            and isinstance(node.func.value, ast.Constant)
            and isinstance(node.func.value.value, str)
            and SQL_WORD.search(node.func.value.value)
        ):
            found.append(("str.format", node.lineno, ast.unparse(node)))
    return found


def executed_statements(path: Path) -> list[tuple[int, str]]:
    """(line, expression) of the statement argument of every executing call that is not a
    string literal nor a named statement from sql/queries.sql."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
            continue
        if node.func.attr not in EXECUTING:
            continue
        statement = node.args[0]
        if isinstance(statement, ast.Constant) and isinstance(statement.value, str):
            continue
        if isinstance(statement, ast.JoinedStr) or (
            isinstance(statement, ast.Call)
            and statement.args
            and isinstance(statement.args[0], ast.JoinedStr)
        ):
            continue  # formatted SQL: checked against IDENTIFIER_ONLY by the test above
        if (
            isinstance(statement, ast.Call)
            and isinstance(statement.func, ast.Name)
            and statement.func.id in ("query", "models_query", "text")
            and len(statement.args) == 1
            and isinstance(statement.args[0], ast.Constant)
        ):
            continue
        found.append((node.lineno, ast.unparse(statement)))
    return found


def test_no_sql_is_built_from_values_only_the_listed_identifiers_are_interpolated() -> None:
    formatted = set()
    for path in python_sources():
        relative = path.relative_to(ROOT).as_posix()
        for kind, line, expression in sql_built_by_formatting(path):
            assert kind == "f-string", f"{relative}:{line} builds SQL with {kind}: {expression}"
            formatted.add((relative, expression))
    assert formatted <= IDENTIFIER_ONLY, f"SQL formatted from values: {formatted - IDENTIFIER_ONLY}"
    # What the listed expressions can hold: identifiers, whatever the worker id is.
    assert IDENTIFIER.match(command.DEMO_DATABASE) and IDENTIFIER.match(migrations.VERSION_TABLE)
    for worker_id in (HOSTILE, 'w"; NOTIFY x; --', "\u0000\n$$", "é" * 300, ""):
        channel = listener.DoorbellListener("postgresql://unused", worker_id, asyncio.Event()).health_channel
        assert IDENTIFIER.match(channel), channel
        assert channel == "pgqe_health_" + hashlib.sha1(worker_id.encode()).hexdigest()[:16]


def test_every_executed_statement_is_a_literal_a_named_query_or_a_listed_variable() -> None:
    variables = set()
    for path in python_sources():
        relative = path.relative_to(ROOT).as_posix()
        for _, expression in executed_statements(path):
            variables.add((relative, expression))
    assert variables <= NON_LITERAL_STATEMENTS, f"unlisted statements: {variables - NON_LITERAL_STATEMENTS}"


def test_dynamic_sql_inside_the_database_quotes_identifiers_and_literals() -> None:
    for path in sorted((ROOT / "sql").rglob("*.sql")):
        text = re.sub(r"--[^\n]*", "", path.read_text(encoding="utf-8"))
        for match in re.finditer(r"\bEXECUTE\s+(?!FUNCTION\b|PROCEDURE\b|ON\b)(?P<rest>[^;]*)", text, re.I):
            rest = match["rest"].strip()
            assert rest.lower().startswith("format("), f"{path.name}: EXECUTE of a built string: {rest[:80]}"
            template = re.match(r"format\(\s*'(?P<t>(?:[^']|'')*)'", rest, re.I)
            assert template is not None, rest[:80]
            placeholders = re.findall(r"%(?:\d+\$)?[-]?(.)", template["t"])
            assert set(placeholders) <= {"I", "L", "%"}, f"{path.name}: unquoted %s in {template['t']}"
        assert not re.search(r"\bEXECUTE\s+'[^']*'\s*\|\|", text, re.I), path.name


# -- hostile values through the CLI and the rows ---------------------------------------------


async def snapshot(conn: asyncpg.Connection) -> dict[str, object]:
    tables = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
    )
    counts = {
        name: await conn.fetchval(query)
        for name, query in {
            "projects": "SELECT count(*) FROM projects",
            "disciplines": "SELECT count(*) FROM disciplines",
            "pages": "SELECT count(*) FROM pages",
            "pointers": "SELECT count(*) FROM pointers",
            "experience_files": "SELECT count(*) FROM experience_files",
        }.items()
    }
    functions = await conn.fetchval(
        "SELECT count(*) FROM pg_proc WHERE proname IN ('requeue_failed_pointers', 'seed_default_experience')"
    )
    return {"tables": [r[0] for r in tables], "counts": counts, "functions": functions}


async def cli(env: dict[str, str], *args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pgqueue_enricher", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def cli_env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PASS2_", "DATABASE_"))}
    return {**env, "DATABASE_URL": db_url, "LOG_FORMAT": "console"}


async def insert_failed(conn: asyncpg.Connection, page: uuid.UUID, error: str) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO pointers (page_id, title, png_path, enrichment_status, enrichment_error, "
        "enrichment_attempts) VALUES ($1, $2, 'crops/x.png', 'failed', $2, 5) RETURNING id",
        page,
        error,
    )


def in_process_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`pgqueue-enricher *args` in this process (run it in a thread: it calls asyncio.run)."""
    from pgqueue_enricher.cli import main as cli_module

    previous = structlog.get_config()
    try:
        code = cli_module.main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        structlog.configure(**previous)  # the CLI points structlog at the captured stderr
    out, err = capsys.readouterr()
    return code, out, err


async def test_hostile_requeue_filters_match_verbatim_and_leave_the_tables_intact(
    db_url: str,
    conn: asyncpg.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project, page = await make_page(conn)
    exact = await insert_failed(conn, page, HOSTILE)
    quoted = await insert_failed(conn, page, 'it\'s "quoted"; DELETE FROM pages; --')
    others = [await insert_failed(conn, page, f"Gemini is unavailable (503) #{n}") for n in range(3)]
    before = await snapshot(conn)

    # Once as an operator types it, in a process of its own ...
    assert await cli(cli_env(db_url), "requeue", "--error-like", HOSTILE, cwd=tmp_path) == (
        0,
        "requeued 1\n",
        "",
    )
    # ... and every other variation through the same entry point, in this process.
    for name, value in cli_env(db_url).items():
        monkeypatch.setenv(name, value)
    for name in [n for n in os.environ if n.startswith("PASS2_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env

    async def requeue(*args: str) -> tuple[int, str, str]:
        return await asyncio.to_thread(in_process_cli, capsys, "requeue", *args)

    # Values, not SQL: each pattern matches only what it spells (ILIKE), nothing more.
    assert await requeue("--error-like", "x' OR '1'='1") == (0, "requeued 0\n", "")
    assert await requeue("--error-like", "%' OR 1=1; --") == (0, "requeued 0\n", "")
    assert await requeue("--error-like", '%\'s "quoted"; DELETE FROM pages; --') == (0, "requeued 1\n", "")
    statuses = dict(await conn.fetch("SELECT id, enrichment_status FROM pointers"))
    assert statuses[exact] == statuses[quoted] == "pending"
    assert {statuses[p] for p in others} == {"failed"}

    # Malformed filters are refused before any SQL runs, naming the option.
    for args in (
        ["--project", HOSTILE],
        ["--project", f"{project}' OR '1'='1"],
        ["--pointer", str(others[0]), "--pointer", "1 OR 1=1"],
        ["--pointer", f"{{{others[0]}}}; DROP TABLE pointers"],
    ):
        code, out, err = await requeue(*args)
        assert code == 2 and out == "" and "not a UUID" in err, (args, err)
    # A pattern Postgres may refuse (a trailing escape) is matched or refused with a reason.
    code, out, err = await requeue("--error-like", "Gemini is unavailable (503) #1\\")
    assert (code, out) == (0, "requeued 0\n") or (
        code == 1 and "LIKE pattern must not end with escape character" in err
    ), err
    assert "Traceback" not in err
    # A well-formed project or pointer that matches nothing requeues nothing.
    assert await requeue("--project", str(uuid.uuid4())) == (0, "requeued 0\n", "")
    assert await requeue("--pointer", str(uuid.uuid4()), "--error-like", "%") == (0, "requeued 0\n", "")
    assert await requeue("--project", str(project), "--pointer", str(others[0])) == (0, "requeued 1\n", "")

    # Numeric settings that reach SQL as parameters are validated first.
    for name, value in (("PASS2_MAX_ATTEMPTS", "1; DROP TABLE pointers"),
                        ("PASS2_LEASE_SECONDS", "30); DROP TABLE pointers; --"),
                        ("PASS2_MAX_CONCURRENT", "3 OR 1=1")):  # fmt: skip
        monkeypatch.setenv(name, value)
        code, _, err = await asyncio.to_thread(in_process_cli, capsys, "status")
        monkeypatch.delenv(name)
        assert code == 2 and name in err, err

    after = await snapshot(conn)
    assert after == before
    errors = await conn.fetch("SELECT enrichment_error FROM pointers WHERE enrichment_status = 'failed'")
    assert sorted(r[0] for r in errors) == [f"Gemini is unavailable (503) #{n}" for n in (1, 2)]


async def test_a_hostile_worker_id_is_stored_and_reported_verbatim(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    fake_server: FakeServer,
    tmp_path: Path,
) -> None:
    worker_id = "w'\"; DROP TABLE pointers; -- $1 \\"
    fake_server.storage.put("crops/detail.png", tiny_png())
    _, page = await make_page(conn)
    await rows.insert_pointers(
        conn, [rows.NewPointer(page, f"Pointer {g}", "crops/detail.png") for g in (1, 2)]
    )
    before = await snapshot(conn)
    gate = fake_server.gemini.hold()
    settings = worker_settings(provider_settings, db_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pgqueue_enricher", "run", "--drain", "--worker-id", worker_id,
        env=settings_env(settings), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await gate.arrivals(2, timeout=20)
        held = await conn.fetch("SELECT DISTINCT enrichment_locked_by FROM pointers")
        assert [r[0] for r in held] == [worker_id]
        code, out, err = await cli(cli_env(db_url), "status", "--json", cwd=tmp_path)
        assert code == 0, err
        workers = json.loads(out)["workers"]  # the contract's keys; the registry adds more
        assert [{k: w[k] for k in ("worker_id", "in_flight")} for w in workers] == [
            {"worker_id": worker_id, "in_flight": 2}
        ]
    finally:
        gate.release()
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    metadata = await conn.fetch("SELECT enrichment_status, enrichment_metadata->>'worker_id' FROM pointers")
    assert [tuple(r) for r in metadata] == [("complete", worker_id)] * 2
    assert await snapshot(conn) == before


async def test_titles_paths_and_page_context_with_sql_complete_and_are_stored_verbatim(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, fake_server: FakeServer
) -> None:
    watcher = await RowWatcher(conn).install()
    _, page = await make_page(
        conn,
        page_name="A-501'); DROP TABLE pages; --",
        sheet_reflection="Robert'); DELETE FROM pointers WHERE ('a'='a",
        discipline="Arch'; TRUNCATE projects CASCADE; --",
    )
    hostile = {
        HOSTILE: "crops/'; DROP TABLE pointers; --.png",
        "1' OR '1'='1": "crops/1' OR '1'='1.png",
        "$$; DROP FUNCTION requeue_failed_pointers; $$": "crops/$$ %s %(x)s {x} ?.png",
        "\\'; SELECT pg_sleep(10); --": 'crops/semi;colon/quote"d/%27encoded%27.png',
    }
    for path in hostile.values():
        fake_server.storage.put(path, tiny_png())
    new = [rows.NewPointer(page, title, path) for title, path in hostile.items()]
    ids = dict(zip(await rows.insert_pointers(conn, new), hostile.items(), strict=True))
    before = await snapshot(conn)
    async with running_worker(worker_settings(provider_settings, db_url, pass2_max_concurrent=4)):
        assert await watcher.until_final(len(ids), timeout=15) == {str(p): "complete" for p in ids}
    stored = {
        r["id"]: (r["title"], r["png_path"])
        for r in await conn.fetch("SELECT id, title, png_path FROM pointers")
    }
    assert stored == ids
    requested = {r.path for r in fake_server.storage.requests}
    for _, path in ids.values():  # each segment percent-encoded, exactly this object
        assert "/storage/v1/object/project-files/" + quote(path, safe="/") in requested
    prompts = "\n".join("\n".join(r.texts) for r in fake_server.gemini.requests)
    assert "A-501'); DROP TABLE pages; --" in prompts and "Robert'); DELETE FROM pointers" in prompts
    assert "Arch'; TRUNCATE projects CASCADE; --" in prompts
    assert await snapshot(conn) == before


@pytest.mark.parametrize("value", ["1; DROP TABLE pointers", "0", "-1", "nan", "3 OR 1=1"])
def test_numeric_cli_options_refuse_anything_but_numbers(value: str) -> None:
    from pgqueue_enricher.cli.main import build_parser

    parser = build_parser()
    for option in ("--concurrency", "--poll-interval"):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(["run", option, value])
        assert exit_info.value.code == 2
