"""`pgqueue-enricher doctor`: every check against a real Postgres and the wire fakes.

First everything passes; then each deployment mistake alone shows its ✗ line with a fix and
exit code 1, while the other checks stay ✓. A malformed setting is exit 2. Doctor changes no
row, makes no generateContent call, and prints no secret.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from pydantic import SecretStr

from pgqueue_enricher.cli.doctor import render
from pgqueue_enricher.ops.doctor import Check, advised_lists, check_listen, ivfflat_problem, run_checks
from pgqueue_enricher.schema import migrations
from pgqueue_enricher.settings import ConfigError, Settings
from tests.fakes.pytest_plugin import FAKE_KEYS
from tests.fakes.server import FakeServer
from tests.support.harness import run_cli, worker_settings
from tests.support.helpers import insert_pointers, make_page
from tests.support.pooler import PgBouncer

HNSW = "CREATE INDEX pointers_embedding_hnsw ON pointers USING hnsw (embedding vector_cosine_ops)"
# Real-looking secrets: the report must show none of them.
LEAKY_GEMINI_KEY = "AIzaSyD-leaked-gemini-key-0123456789abcd"
LEAKY_VOYAGE_KEY = "pa-leaked-voyage-key-9f8e7d6c5b4a3210"
LEAKY_SUPABASE_KEY = "eyJhbGciOiJIUzI1NiJ9.leaked-service-role.c2lnbmF0dXJl"
LISTEN_WAIT = 2.0
PERMITS_FUNCTION = (
    "public.pgqueue_enricher_permit(text, double precision, double precision, "
    "double precision, double precision, double precision, text, double precision)"
)


@pytest.fixture
async def healthy(db_url: str, conn: asyncpg.Connection, provider_settings: Settings) -> Settings:
    """A deployment that passes every check: migrated, an hnsw index, rows in the queue."""
    await conn.execute(HNSW)
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 3)
    return worker_settings(provider_settings, db_url)


@pytest.fixture
def free_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def checks_of(settings: Settings) -> dict[str, Check]:
    return {check.name: check for check in await run_checks(settings, listen_timeout=LISTEN_WAIT)}


async def only_failure(settings: Settings) -> tuple[Check, str]:
    """The one failed check (every other passed), and doctor's line for it; exit code 1."""
    checks = await run_checks(settings, listen_timeout=LISTEN_WAIT)
    failures = [check for check in checks if not check.ok]
    assert len(failures) == 1, [(c.name, c.detail) for c in failures]
    text, code = render(checks, as_json=False)
    assert code == 1
    (failed_line,) = [line for line in text.splitlines() if line.startswith("✗")]
    assert failed_line.startswith(f"✗ {failures[0].name}: ") and ". Fix: " in failed_line
    return failures[0], failed_line


async def pointer_rows(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch("SELECT * FROM pointers ORDER BY id")]


async def test_a_healthy_deployment_passes_every_check_and_doctor_exits_0(
    healthy: Settings, conn: asyncpg.Connection, fake_server: FakeServer
) -> None:
    before = await pointer_rows(conn)
    code, output = await run_cli(healthy, "doctor", "--json")
    assert code == 0, output
    report = json.loads(output.strip().splitlines()[-1])
    names = [check["name"] for check in report["checks"]]
    assert names == [
        "database", "schema", "privileges", "pgvector", "vector index", "listen", "storage", "gemini", "voyage"
    ]  # fmt: skip
    assert report["ok"] is True and all(check["ok"] and check["fix"] is None for check in report["checks"])
    assert all(set(check) == {"name", "ok", "detail", "fix"} for check in report["checks"])
    voyage = next(check for check in report["checks"] if check["name"] == "voyage")
    assert "cost $0.0000" in voyage["detail"] and "tokens" in voyage["detail"]
    # Changes no row, generates nothing: one model lookup, one embedding, one bucket lookup.
    assert await pointer_rows(conn) == before and len(before) == 3
    assert fake_server.gemini.calls == 0 and fake_server.gemini.model_lookups == 1
    assert fake_server.voyage.calls == 1 and fake_server.storage.bucket_lookups == 1
    assert not any(key in output for key in FAKE_KEYS)


async def test_the_human_report_is_one_check_mark_line_per_check(healthy: Settings) -> None:
    text, code = render(await run_checks(healthy, listen_timeout=LISTEN_WAIT), as_json=False)
    lines = text.splitlines()
    assert code == 0 and lines[-1] == "all 9 checks passed"
    assert len(lines) == 10 and all(line.startswith("✓ ") for line in lines[:-1]), text


async def test_a_refused_gemini_key_fails_the_gemini_check(
    healthy: Settings, fake_server: FakeServer
) -> None:
    settings = healthy.model_copy(update={"gemini_api_key": SecretStr(LEAKY_GEMINI_KEY)})
    check, line = await only_failure(settings)
    assert check.name == "gemini" and "refused the key" in line and "GEMINI_API_KEY" in line
    assert LEAKY_GEMINI_KEY not in line and fake_server.gemini.calls == 0


async def test_an_unknown_model_fails_the_gemini_check(healthy: Settings, fake_server: FakeServer) -> None:
    check, line = await only_failure(healthy.model_copy(update={"pass2_model": "gemini-0-retired"}))
    assert check.name == "gemini" and "'gemini-0-retired'" in line and "set PASS2_MODEL" in line
    assert fake_server.gemini.calls == 0


async def test_a_refused_voyage_key_fails_the_voyage_check(healthy: Settings) -> None:
    check, line = await only_failure(
        healthy.model_copy(update={"voyage_api_key": SecretStr(LEAKY_VOYAGE_KEY)})
    )
    assert check.name == "voyage" and "VOYAGE_API_KEY" in line and LEAKY_VOYAGE_KEY not in line


async def test_a_missing_bucket_fails_the_storage_check(healthy: Settings) -> None:
    check, line = await only_failure(healthy.model_copy(update={"storage_bucket": "no-such-bucket"}))
    assert check.name == "storage" and "no bucket 'no-such-bucket'" in line and "STORAGE_BUCKET" in line


async def test_a_refused_storage_key_fails_the_storage_check(healthy: Settings) -> None:
    settings = healthy.model_copy(update={"supabase_service_key": SecretStr(LEAKY_SUPABASE_KEY)})
    check, line = await only_failure(settings)
    assert check.name == "storage" and "SUPABASE_SERVICE_KEY" in line and LEAKY_SUPABASE_KEY not in line


async def test_a_schema_behind_head_fails_the_schema_check(healthy: Settings, db_url: str) -> None:
    head = migrations.head_revision()
    previous = f"{int(head) - 1:04d}"
    migrations.downgrade(db_url, previous)
    checks = await checks_of(healthy)
    assert not checks["schema"].ok and f"at revision {previous}, head is {head}" in checks["schema"].detail
    assert "pgqueue-enricher migrate" in (checks["schema"].fix or "")
    # What the newest revision adds is missing too, and says so with the same fix; nothing else fails.
    others = [check for name, check in checks.items() if name != "schema" and not check.ok]
    assert all("pgqueue-enricher migrate" in (check.fix or "") for check in others), others
    assert {check.name for check in others} <= {"privileges"}


async def test_a_database_never_migrated_says_to_migrate(
    empty_db_url: str, provider_settings: Settings
) -> None:
    checks = await checks_of(worker_settings(provider_settings, empty_db_url))
    assert checks["database"].ok
    assert not checks["schema"].ok and "not migrated" in checks["schema"].detail
    assert "pgqueue-enricher migrate" in (checks["schema"].fix or "")
    assert not checks["privileges"].ok and "pgqueue-enricher migrate" in (checks["privileges"].fix or "")


async def test_listen_through_a_transaction_pooler_fails_the_listen_check(
    healthy: Settings, db_url: str, pooler: PgBouncer
) -> None:
    settings = healthy.model_copy(update={"database_listen_url": SecretStr(pooler.url(db_url))})
    check, line = await only_failure(settings)
    assert check.name == "listen" and "DATABASE_LISTEN_URL" in line and "did not arrive" in line
    assert pooler.password not in line


async def test_a_listen_url_on_supabases_transaction_pooler_fails_without_trying(
    provider_settings: Settings,
) -> None:
    url = "postgresql://postgres.abcdefgh:pooler-pw-77aa@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"
    settings = worker_settings(provider_settings, "postgresql://unused@127.0.0.1/none")
    check = await check_listen(
        settings.model_copy(update={"database_listen_url": SecretStr(url)}), LISTEN_WAIT
    )
    assert not check.ok and "port 6543" in check.detail and "DATABASE_LISTEN_URL" in (check.fix or "")
    assert "pooler-pw-77aa" not in check.detail


async def test_a_missing_storage_dir_fails_the_storage_check(healthy: Settings, tmp_path: Path) -> None:
    check, line = await only_failure(healthy.model_copy(update={"storage_dir": str(tmp_path / "absent")}))
    assert check.name == "storage" and "does not exist" in line and "STORAGE_DIR" in line


async def test_an_ivfflat_index_built_on_an_empty_table_fails_the_vector_index_check(
    healthy: Settings, conn: asyncpg.Connection
) -> None:
    await conn.execute("DROP INDEX pointers_embedding_hnsw")
    await conn.execute(
        "CREATE INDEX idx_pointers_embedding ON pointers USING ivfflat (embedding vector_cosine_ops) "
        "WITH (lists = 100)"
    )
    check, line = await only_failure(healthy)
    assert check.name == "vector index" and "idx_pointers_embedding is ivfflat" in line
    assert "lists = 100 but pointers holds 0 embeddings" in line and "hnsw" in line


async def test_no_vector_index_fails_the_vector_index_check(
    healthy: Settings, conn: asyncpg.Connection
) -> None:
    await conn.execute("DROP INDEX pointers_embedding_hnsw")
    check, line = await only_failure(healthy)
    assert check.name == "vector index" and "no index on pointers.embedding" in line


async def test_an_index_of_another_distance_fails_the_vector_index_check(
    healthy: Settings, conn: asyncpg.Connection
) -> None:
    await conn.execute("DROP INDEX pointers_embedding_hnsw")
    await conn.execute("CREATE INDEX pointers_embedding_l2 ON pointers USING hnsw (embedding vector_l2_ops)")
    check, line = await only_failure(healthy)
    assert check.name == "vector index" and "pointers_embedding_l2 uses vector_l2_ops" in line


def test_the_ivfflat_rule_follows_pgvectors_advice_on_lists() -> None:
    assert advised_lists(0) == 1 and advised_lists(100_000) == 100 and advised_lists(4_000_000) == 2000
    assert ivfflat_problem(100, 0) is not None  # Maestro's index: built on an empty table
    assert ivfflat_problem(100, 999) is not None  # under 10 rows per list
    assert ivfflat_problem(100, 100_000) is None
    assert ivfflat_problem(100, 1_000_000) is not None  # advice 1000: lists 10x too few
    assert ivfflat_problem(2000, 4_000_000) is None


async def test_a_role_without_the_workers_privileges_fails_the_privileges_check(
    healthy: Settings, db_url: str, conn: asyncpg.Connection
) -> None:
    role = f"doctor_reader_{abs(hash(db_url)) % 10**8}"
    await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'reader-password-5e1f'")
    try:
        await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        # As on Supabase, where only service_role may call it (plain Postgres leaves it to PUBLIC).
        await conn.execute(f"REVOKE EXECUTE ON FUNCTION {PERMITS_FUNCTION} FROM PUBLIC")
        parts = urlsplit(db_url)
        host = parts.netloc.rpartition("@")[2]
        url = urlunsplit(parts._replace(netloc=f"{role}:reader-password-5e1f@{host}"))
        checks = await checks_of(healthy.model_copy(update={"database_url": SecretStr(url)}))
        assert not checks["privileges"].ok, checks["privileges"]
        assert "UPDATE on public.pointers" in checks["privileges"].detail
        assert "EXECUTE on public.pgqueue_enricher_permit" in checks["privileges"].detail
        assert "reader-password-5e1f" not in json.dumps([c.as_json() for c in checks.values()])
    finally:
        await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
        await conn.execute(f"DROP ROLE {role}")


async def test_no_secret_appears_when_every_check_fails(provider_settings: Settings, free_port: int) -> None:
    database_password = "S3cret-db-password-41c7"
    settings = worker_settings(
        provider_settings,
        f"postgresql://enricher:{database_password}@127.0.0.1:{free_port}/maestro",
        gemini_api_key=SecretStr(LEAKY_GEMINI_KEY),
        voyage_api_key=SecretStr(LEAKY_VOYAGE_KEY),
        supabase_service_key=SecretStr(LEAKY_SUPABASE_KEY),
    )
    checks = await run_checks(settings, listen_timeout=LISTEN_WAIT)
    text, code = render(checks, as_json=True)
    report = json.loads(text)
    assert code == 1 and report["ok"] is False
    assert {c["name"] for c in report["checks"] if not c["ok"]} == {
        "database", "schema", "privileges", "pgvector", "vector index", "listen", "storage", "gemini", "voyage"
    }  # fmt: skip
    assert (
        "could not connect" in report["checks"][0]["detail"] and "DATABASE_URL" in report["checks"][0]["fix"]
    )
    human, _ = render(checks, as_json=False)
    for secret in (database_password, LEAKY_GEMINI_KEY, LEAKY_VOYAGE_KEY, LEAKY_SUPABASE_KEY):
        assert secret not in text and secret not in human


def test_a_malformed_key_is_a_configuration_error(provider_settings: Settings) -> None:
    settings = worker_settings(provider_settings, "postgresql://unused@127.0.0.1/none")
    with pytest.raises(ConfigError, match="GEMINI_API_KEY looks malformed"):
        asyncio.run(
            run_checks(settings.model_copy(update={"gemini_api_key": SecretStr("AIza key with space")}))
        )


async def test_a_malformed_setting_exits_2_naming_it(healthy: Settings) -> None:
    code, output = await run_cli(healthy.model_copy(update={"pass2_price_voyage": -1.0}), "doctor")
    assert code == 2 and "PASS2_PRICE_VOYAGE" in output, output
