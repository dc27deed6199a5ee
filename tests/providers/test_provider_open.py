"""Providers open before the first claim: a setting that cannot work stops the worker at
start-up with exit 2 and one sentence, and the backlog is left exactly as it was."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from pgqueue_enricher.providers.checks import key_problem
from pgqueue_enricher.providers.factory import build_providers
from pgqueue_enricher.queue.worker import Worker
from pgqueue_enricher.settings import ConfigError, Settings
from tests.fakes.server import FakeServer
from tests.support.harness import settings_env, worker_settings
from tests.support.helpers import insert_pointers, make_page

BACKLOG = 20
# `run` with the `local` extra made unimportable, as in an install without it.
WITHOUT_LOCAL_EXTRA = (
    "import sys; sys.modules['rapidocr_onnxruntime'] = None; "
    "from pgqueue_enricher.cli.main import main; raise SystemExit(main(sys.argv[1:]))"
)


async def backlog_untouched(conn: asyncpg.Connection) -> list[tuple[str, int, str | None, str | None]]:
    rows = await conn.fetch(
        "SELECT enrichment_status, enrichment_attempts, enrichment_error, enrichment_locked_by FROM pointers"
    )
    return sorted({tuple(row) for row in rows})  # type: ignore[misc]


@pytest.mark.parametrize(
    ("case", "sentence"),
    [
        ("gemini key with a space", "GEMINI_API_KEY looks malformed: it contains a space or line break"),
        ("voyage key in quotes", "VOYAGE_API_KEY looks malformed: it is wrapped in quotes"),
        ("storage dir missing", "does not exist or is not a directory: point STORAGE_DIR at the folder"),
        ("local without its extra", "ENRICHER_PROVIDER=local needs the `local` extra"),
    ],
)
async def test_a_backlog_stays_pending_and_run_exits_2_when_a_provider_cannot_open(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    tmp_path: Path,
    case: str,
    sentence: str,
) -> None:
    _, page = await make_page(conn)
    await insert_pointers(conn, page, BACKLOG)
    before = await backlog_untouched(conn)
    bad_key = "fake-gemini key-7f3a9c21d4"
    overrides = {
        "gemini key with a space": {"gemini_api_key": SecretStr(bad_key)},
        "voyage key in quotes": {"voyage_api_key": SecretStr('"pa-fake-voyage-key-51d2e8b6"')},
        "storage dir missing": {"storage_dir": str(tmp_path / "no-such-folder")},
        "local without its extra": {"enricher_provider": "local", "storage_dir": str(tmp_path)},
    }[case]
    settings = worker_settings(provider_settings, db_url, log_format="json", **overrides)
    command = ["-c", WITHOUT_LOCAL_EXTRA] if case == "local without its extra" else ["-m", "pgqueue_enricher"]
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, *command, "run", "--drain"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("pgqueue-enricher: ") and sentence in message, result.stderr
    assert "Traceback" not in result.stderr and bad_key not in result.stderr
    assert "pointer_claimed" not in result.stderr
    assert before == [("pending", 0, None, None)]
    assert await backlog_untouched(conn) == before
    assert crops.gemini.calls == 0 and crops.voyage.calls == 0


async def test_the_worker_opens_its_providers_before_it_opens_a_database_connection(
    provider_settings: Settings, tmp_path: Path
) -> None:
    # Nothing listens on port 9: were the pool opened first, the worker would wait for the
    # database with backoff instead of reporting the setting.
    settings = worker_settings(
        provider_settings, "postgresql://nobody@127.0.0.1:9/none", storage_dir=str(tmp_path / "gone")
    )
    worker = Worker(settings)
    with pytest.raises(ConfigError, match="STORAGE_DIR") as raised:
        await asyncio.wait_for(worker.run(), 10)
    assert str(tmp_path / "gone") in str(raised.value)
    assert worker.pool is None and worker.metrics.db_errors == 0 and worker.metrics.claims == 0


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("   ", "empty"),
        ("fake-gemini-key-7f3a9c21d4\n", "starts or ends with whitespace"),
        (" fake-gemini-key-7f3a9c21d4", "starts or ends with whitespace"),
        ("'fake-gemini-key-7f3a9c21d4'", "wrapped in quotes"),
        ("fake-gemini\tkey-7f3a9c21d4", "space or line break"),
        ("fake-gemini\x00key-7f3a9c21d4", "control character"),
        ("fake-gemini-kéy-7f3a9c21d4", "non-ASCII"),
        ("fake-gemini-key-7f3a9c21d4", None),
        ("AIzaSyA-_0123456789abcdefghijklmnopqrstu", None),
        ("sb_secret_0123456789abcdef", None),
    ],
)
def test_a_key_is_refused_for_what_is_wrong_with_it_and_a_plausible_key_passes(
    key: str, problem: str | None
) -> None:
    found = key_problem(key)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and "7f3a9c21d4" not in found


@pytest.mark.parametrize(
    ("update", "variable"),
    [
        ({"supabase_url": "project.supabase.co"}, "SUPABASE_URL"),
        ({"supabase_url": "ftp://project.supabase.co"}, "SUPABASE_URL"),
        ({"supabase_url": "https://"}, "SUPABASE_URL"),
        ({"supabase_service_key": SecretStr("fake-supabase-service-key-b04c6e93\n")}, "SUPABASE_SERVICE_KEY"),
        ({"voyage_api_key": SecretStr("pa-fake voyage")}, "VOYAGE_API_KEY"),
    ],
)
async def test_each_provider_names_its_own_variable_when_it_cannot_open(
    provider_settings: Settings, update: dict[str, object], variable: str
) -> None:
    providers = build_providers(provider_settings.model_copy(update=update))
    try:
        with pytest.raises(ConfigError, match=variable):
            await providers.open()
    finally:
        await providers.aclose()
