"""No secret leaks: API keys, the Storage service key and the database password never reach
a log line, an error message, `enrichment_error`, `enrichment_metadata` or `status`.

The database password belongs to a real role created for the test. On the embedded server
(pg_hba `trust` by default) the test makes that role authenticate with SCRAM, so the
password is really used and a wrong one is really refused; either way the string itself
must appear nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
import structlog
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from pgqueue_enricher.demo import embedded_postgres as database
from pgqueue_enricher.demo.rows import NewPointer, insert_pointers
from pgqueue_enricher.logs import configure_logging
from pgqueue_enricher.queue.worker import Worker
from pgqueue_enricher.settings import Settings
from tests.fakes.pytest_plugin import FAKE_KEYS
from tests.fakes.server import FakeServer, tiny_png
from tests.support.harness import RowWatcher, running_worker, settings_env, worker_settings
from tests.support.helpers import make_page, until

CROP = "crops/detail.png"
_roles = itertools.count()


@dataclass
class Role:
    name: str
    password: str
    url: str  # the test database, as this role, password included
    password_enforced: bool

    @property
    def secrets(self) -> tuple[str, ...]:
        return (*FAKE_KEYS, self.password)

    def url_with(self, **parts: Any) -> str:
        return make_url(self.url).set(**parts).render_as_string(hide_password=False)


def admin(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@contextlib.contextmanager
def scram_required(server: database.DatabaseHandle, role: str) -> Iterator[bool]:
    """Make `role` authenticate with a password on an embedded server (whose pg_hba trusts
    everyone). Yields whether that was possible; other roles are untouched."""
    if server.source != "embedded":
        yield False
        return
    with psycopg.connect(server.url, autocommit=True) as conn:
        path = Path(conn.execute("SHOW hba_file").fetchone()[0])
    original = path.read_text()
    path.write_text(f"local all {role} scram-sha-256\nhost all {role} 127.0.0.1/32 scram-sha-256\n{original}")
    admin(server.url, "SELECT pg_reload_conf()")
    try:
        yield True
    finally:
        path.write_text(original)
        admin(server.url, "SELECT pg_reload_conf()")


async def refused_with_wrong_password(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except asyncpg.InvalidPasswordError:
        return True
    await conn.close()
    return False


@pytest.fixture
async def role(pg_server: database.DatabaseHandle, db_url: str) -> AsyncIterator[Role]:
    name = f"pgqe_secret_{os.getpid()}_{next(_roles)}"
    password = f"pw-secret-{secrets.token_hex(8)}"
    admin(
        pg_server.url, f"CREATE ROLE {name} LOGIN PASSWORD '{password}'", f"GRANT pg_read_all_stats TO {name}"
    )
    admin(
        db_url,
        f"GRANT USAGE ON SCHEMA public TO {name}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}",
    )
    url = make_url(db_url).set(username=name, password=password).render_as_string(hide_password=False)
    try:
        with scram_required(pg_server, name) as enforced:
            if enforced:  # the reload is asynchronous: wait until a wrong password is refused
                wrong = make_url(url).set(password="wrong").render_as_string(hide_password=False)
                for _ in range(100):
                    if await refused_with_wrong_password(wrong):
                        break
                    await asyncio.sleep(0.02)
                else:
                    raise AssertionError("pg_hba reload did not take effect")
            yield Role(name, password, url, enforced)
    finally:
        admin(db_url, f"DROP OWNED BY {name}")
        admin(pg_server.url, f"DROP ROLE IF EXISTS {name}")


def dead_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_no_secret(where: str, text: str, secrets_: tuple[str, ...]) -> None:
    leaked = [s for s in secrets_ if s in text]
    assert not leaked, f"{where} contains {leaked}"


@contextlib.contextmanager
def captured_structlog() -> Iterator[io.StringIO]:
    """Every structlog line of this process, as JSON at DEBUG level."""
    previous = structlog.get_config()
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream=stream)
    try:
        yield stream
    finally:
        structlog.configure(**previous)


async def stored_texts(conn: asyncpg.Connection) -> str:
    rows = await conn.fetch(
        "SELECT enrichment_status, enrichment_error, enrichment_metadata::text AS meta, "
        "enrichment_locked_by, description FROM pointers"
    )
    return "\n".join(str(dict(row)) for row in rows)


async def insert(conn: asyncpg.Connection, page: Any, count: int, title: str) -> list[Any]:
    # Backdated by index: claimed in title order, as separate inserts would be.
    new = [NewPointer(page, f"{title} {n}", CROP, age_seconds=count - n) for n in range(count)]
    return await insert_pointers(conn, new)


async def test_no_secret_reaches_logs_rows_or_errors_on_any_failure_path_of_the_worker(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    fake_server: FakeServer,
    role: Role,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    watcher = await RowWatcher(conn).install()
    fake_server.storage.put(CROP, tiny_png())
    _, page = await make_page(conn)
    # A short first probe: a refused key pauses the provider (design.md "Provider admission")
    # and the fleet's probe, answered once the script is spent, lifts the pause.
    settings = worker_settings(
        provider_settings,
        role.url,
        pass2_max_attempts=1,
        pass2_max_concurrent=14,
        pass2_probe_base=0.5,
        log_format="json",
    )
    errors: list[str] = []
    with captured_structlog() as logs:
        # Every provider failure at once: one worker, 14 pointers, one attempt each.
        fake_server.storage.script(["401", "timeout", "404", "429", "500"])
        fake_server.gemini.script(["429", "500", "timeout", "401"])
        fake_server.voyage.script(["429", "500", "timeout", "401"])
        await insert(conn, page, 14, "Failure path")
        async with running_worker(settings, worker_id="secrets-worker"):
            final = await watcher.until_final(14, timeout=30)
        # Storage's five and Gemini's and Voyage's 500 and timeout fail (one attempt each); each
        # provider's 429 is a wait and its 401 a pause lifted by the probe: those rows go on. Which
        # row meets which scripted fault depends on the interleaving (a row that waited may meet
        # a later fault of the next provider), so only the bounds are fixed.
        statuses = list(final.values())
        assert len(statuses) == 14 and set(statuses) <= {"complete", "failed"}
        assert 5 <= statuses.count("failed") <= 9, statuses
        for service, kinds in ((fake_server.storage, ("401", "timeout", "404", "429", "500")),
                               (fake_server.gemini, ("429", "500", "timeout", "401")),
                               (fake_server.voyage, ("429", "500", "timeout", "401"))):  # fmt: skip
            assert all(service.outcomes[kind] == 1 for kind in kinds), (service.name, service.outcomes)

        # Connection refused by each provider in turn.
        closed = f"http://127.0.0.1:{dead_port()}"
        for override in (
            {"supabase_url": closed},
            {"gemini_base_url": closed},
            {"voyage_base_url": closed + "/v1"},
        ):
            [pointer] = await insert(conn, page, 1, f"Refused {next(iter(override))}")
            async with running_worker(settings.model_copy(update=override)):
                assert await watcher.until_final(1, timeout=15) == {str(pointer): "failed"}

        # The database itself refuses: connection refused, then (when enforced) a wrong password.
        unreachable = settings.model_copy(
            update={"database_url": SecretStr(role.url_with(host="127.0.0.1", port=dead_port(), query={}))}
        )
        stop = asyncio.Event()
        worker = Worker(unreachable, stop_event=stop)
        task = asyncio.create_task(worker.run())
        await until(lambda: worker.metrics.db_errors >= 2, timeout=10.0)
        stop.set()
        await asyncio.wait_for(task, 15)
        if role.password_enforced:
            wrong = f"pw-secret-wrong-{secrets.token_hex(4)}"
            role_secrets = (*role.secrets, wrong)
            refused = settings.model_copy(update={"database_url": SecretStr(role.url_with(password=wrong))})
            with pytest.raises(asyncpg.InvalidPasswordError) as raised:
                await Worker(refused).run()
            errors.append(f"{raised.value!r} {raised.value}")
        else:
            role_secrets = role.secrets

    log_text = logs.getvalue()
    assert '"event": "pointer_failed"' in log_text and '"event": "database_unavailable"' in log_text
    rows = await stored_texts(conn)
    reasons = [r["enrichment_error"] for r in await conn.fetch("SELECT enrichment_error FROM pointers")]
    for expected in ("Supabase Storage refused", "not found", "Supabase Storage answered HTTP 429",
                     "Supabase Storage answered HTTP 500", "unavailable", "did not answer",
                     "could not reach Supabase", "could not reach Gemini",
                     "could not reach Voyage"):  # fmt: skip
        assert any(expected in (r or "") for r in reasons), (expected, reasons)
    # The waits and the pauses went through the logs (and the shared provider state) instead.
    assert log_text.count('"event": "pointer_waiting"') >= 4, "the 429s and 401s were not waits"
    assert "Gemini refused the API key" in log_text and "Voyage refused the API key" in log_text
    assert log_text.count('"event": "provider_resumed"') >= 2
    rows += "\n".join(str(dict(r)) for r in await conn.fetch("SELECT * FROM pgqueue_enricher_provider_state"))
    for where, text in (("structlog", log_text), ("stdlib logging", caplog.text), ("rows", rows),
                        ("exceptions", "\n".join(errors))):  # fmt: skip
        assert_no_secret(where, text, role_secrets)


async def cli(env: dict[str, str], *args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pgqueue_enricher",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_no_secret_reaches_the_output_of_a_worker_process_or_any_cli_command(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    fake_server: FakeServer,
    role: Role,
    tmp_path: Path,
) -> None:
    fake_server.storage.put(CROP, tiny_png())
    _, page = await make_page(conn)
    settings = worker_settings(
        provider_settings, role.url, pass2_max_attempts=1, pass2_probe_base=0.5, log_format="json"
    )
    env = {**settings_env(settings), "LOG_LEVEL": "DEBUG"}
    outputs: list[tuple[str, str]] = []

    # `run --drain` as a process through failures of every provider.
    fake_server.storage.script(["401", "404"])
    fake_server.gemini.script(["429", "401"])
    fake_server.voyage.script(["500"])
    await insert(conn, page, 6, "Process")
    code, out, err = await cli(env, "run", "--drain", "--worker-id", "secret-test-run", cwd=tmp_path)
    outputs.append(("run --drain", out + err))
    assert code == 0, err
    assert '"event": "pointer_failed"' in err and '"event": "drained"' in err
    # Gemini's 429 is a wait and its 401 a pause lifted by the probe: those two rows complete.
    assert '"event": "provider_paused"' in err and "Gemini refused the API key" in err
    counts = dict(await conn.fetch("SELECT enrichment_status, count(*) FROM pointers GROUP BY 1"))
    assert counts == {"complete": 3, "failed": 3}

    # `run` against a database that refuses connections: it retries, then stops on SIGTERM.
    unreachable = role.url_with(host="127.0.0.1", port=dead_port(), query={})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pgqueue_enricher", "run",
        env={**env, "DATABASE_URL": unreachable}, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    seen = b""
    async with asyncio.timeout(20):
        while b"database_unavailable" not in seen:
            line = await process.stderr.readline()
            assert line, "the worker exited instead of retrying"
            seen += line
    process.send_signal(signal.SIGTERM)
    rest, more = await asyncio.wait_for(process.communicate(), 20)
    outputs.append(("run, database refused", (seen + more + rest).decode()))
    assert process.returncode == 0

    # The CLI: status, status --json, requeue, migrate.
    status, status_json, migrate = await asyncio.gather(
        cli(env, "status", cwd=tmp_path),
        cli(env, "status", "--json", cwd=tmp_path),
        cli(env, "migrate", cwd=tmp_path),
    )
    assert status[0] == 0 and status_json[0] == 0, status[2] + status_json[2]
    report = json.loads(status_json[1])
    assert report["counts"]["failed"] == 3 and len(report["failure_reasons"]) == 3
    assert "top failure reasons" in status[1]
    requeue = await cli(env, "requeue", "--error-like", "%", cwd=tmp_path)
    assert requeue[:2] == (0, "requeued 3\n"), requeue
    assert migrate[0] == 0 and "nothing to do" in migrate[1], migrate
    for name, result in (("status", status), ("status --json", status_json), ("requeue", requeue),
                         ("migrate", migrate)):  # fmt: skip
        outputs.append((name, result[1] + result[2]))

    # Configuration errors and refused connections, each with every secret in the environment.
    split_password = f"{role.password}/{secrets.token_hex(4)}"  # an unencoded / inside it
    malformed = f"postgresql://{role.name}:{split_password}@localhost/{role.name}"
    fragments = tuple(split_password.split("/"))
    wrong_password = f"pw-secret-wrong-{secrets.token_hex(4)}"
    wrong = role.url_with(password=wrong_password)
    failures = {
        "malformed DATABASE_URL": (["status"], {"DATABASE_URL": malformed}, 2, "DATABASE_URL"),
        "malformed DATABASE_URL, run": (["run"], {"DATABASE_URL": malformed}, 2, "DATABASE_URL"),
        "wrong scheme": (["status"], {"DATABASE_URL": role.url.replace("postgresql", "mysql", 1)}, 2, "DATABASE_URL"),
        "bad number": (["status"], {"PASS2_MAX_CONCURRENT": "many"}, 2, "PASS2_MAX_CONCURRENT"),
        "no voyage key": (["run"], {"VOYAGE_API_KEY": ""}, 2, "VOYAGE_API_KEY"),
        "database refused": (["status"], {"DATABASE_URL": unreachable}, 1, "ConnectionRefusedError"),
    }  # fmt: skip
    if role.password_enforced:
        message = "password authentication failed"
        failures["wrong password"] = (["requeue", "--all-failed"], {"DATABASE_URL": wrong}, 1, message)
    results = await asyncio.gather(
        *(cli({**env, **extra}, *args, cwd=tmp_path) for args, extra, _, _ in failures.values())
    )
    for (name, (_, _, code, message)), (got, out, err) in zip(failures.items(), results, strict=True):
        assert got == code and message in err, (name, got, err)
        assert "Traceback" not in err, (name, err)
        outputs.append((name, out + err))
        assert_no_secret(name, out + err, (*role.secrets, wrong_password, *fragments))

    for name, text in outputs:
        assert_no_secret(name, text, role.secrets)
    assert_no_secret("rows", await stored_texts(conn), role.secrets)
