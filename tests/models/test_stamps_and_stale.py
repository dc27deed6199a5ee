"""Model stamps on complete rows, and `requeue --stale` remaking exactly the stale rows."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from pgqueue_enricher.cli.main import main
from pgqueue_enricher.providers.prompt import PROMPT_VERSION
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, run_cli, running_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page

STAMPS = ("model", "model_version", "prompt_version", "embedding_model", "embedding_dimensions")


async def metadata(conn: asyncpg.Connection, pointer: uuid.UUID) -> dict:
    return json.loads(await conn.fetchval("SELECT enrichment_metadata FROM pointers WHERE id = $1", pointer))


async def complete_pointers(
    conn: asyncpg.Connection, settings: Settings, watcher: RowWatcher, count: int, prefix: str = "Detail"
) -> list[uuid.UUID]:
    _, page = await make_page(conn)
    pointers = await insert_pointers(conn, page, count, title_prefix=prefix)
    async with running_worker(settings):
        assert set((await watcher.until_final(count, timeout=30)).values()) == {"complete"}
    return pointers


async def test_a_gemini_row_is_stamped_with_the_requested_and_served_model_prompt_and_embedding(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    settings = worker_settings(provider_settings, db_url)
    [pointer] = await complete_pointers(conn, settings, watcher, 1)
    meta = await metadata(conn, pointer)
    assert {key: meta[key] for key in STAMPS} == {
        "model": "gemini-3-flash-preview",
        "model_version": "gemini-3-flash-preview",  # the fake's modelVersion: the requested id
        "prompt_version": PROMPT_VERSION,
        "embedding_model": "voyage-3",
        "embedding_dimensions": 1024,
    }
    code, output = await run_cli(settings, "status", "--json")
    assert code == 0, output
    assert json.loads(output)["models"] == [
        {
            "model_version": "gemini-3-flash-preview",
            "prompt_version": PROMPT_VERSION,
            "embedding_model": "voyage-3",
            "count": 1,
        }
    ]


async def test_a_local_row_is_stamped_with_the_local_providers_own_ids(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    settings = worker_settings(provider_settings, db_url, enricher_provider="local")
    [pointer] = await complete_pointers(conn, settings, watcher, 1)
    meta = await metadata(conn, pointer)
    assert {key: meta[key] for key in STAMPS} == {
        "model": "local",
        "model_version": "local-rapidocr-onnxruntime",
        "prompt_version": "local-1",
        "embedding_model": "lexical-hash-1024",
        "embedding_dimensions": 1024,
    }
    assert crops.gemini.calls == 0


async def test_requeue_stale_moves_exactly_the_stale_rows_and_an_embedding_only_row_is_only_embedded_again(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    settings = worker_settings(provider_settings, db_url)
    pointers = await complete_pointers(conn, settings, watcher, 5)
    old_prompt, old_model, old_embedding, unstamped, current = pointers
    # As if the code's prompt version, PASS2_MODEL and VOYAGE_MODEL had been others when these were made.
    for pointer, patch in (
        (old_prompt, {"prompt_version": "pass2-2025-01-01.1"}),
        (old_model, {"model": "gemini-2.5-flash"}),
        (old_embedding, {"embedding_model": "voyage-2"}),
    ):
        await conn.execute(
            "UPDATE pointers SET enrichment_metadata = enrichment_metadata || $2::jsonb WHERE id = $1",
            pointer,
            json.dumps(patch),
        )
    await conn.execute(  # completed before stamps existed: no stamp at all counts as stale
        "UPDATE pointers SET enrichment_metadata = enrichment_metadata - 'prompt_version' - 'model' "
        "- 'embedding_model' WHERE id = $1",
        unstamped,
    )
    before = {row["id"]: dict(row) for row in await conn.fetch("SELECT * FROM pointers")}
    gemini_calls = crops.gemini.calls

    code, output = await run_cli(settings, "requeue", "--stale", "--dry-run")
    assert code == 0, output
    assert " prompt          2  estimated $" in output and " model           1  estimated $" in output
    assert " embedding       1  estimated $0.0000 (no Gemini call" in output
    assert "would requeue 4 stale pointers" in output
    assert {row["id"]: dict(row) for row in await conn.fetch("SELECT * FROM pointers")} == before

    code, output = await run_cli(settings, "requeue", "--stale")
    assert code == 0, output
    moved = {
        row["id"]: (row["enrichment_status"], row["enrichment_lane"])
        for row in await conn.fetch("SELECT id, enrichment_status, enrichment_lane FROM pointers")
    }
    assert moved == {
        old_prompt: ("pending", "backfill"),
        old_model: ("pending", "backfill"),
        old_embedding: ("pending", "backfill"),
        unstamped: ("pending", "backfill"),
        current: ("complete", moved[current][1]),
    }

    async with running_worker(settings):
        await watcher.until_final(4, timeout=30)
    assert crops.gemini.calls - gemini_calls == 3, "the embedding-only row made a Gemini call"
    rows = {row["id"]: row for row in await conn.fetch("SELECT * FROM pointers")}
    assert all(row["enrichment_status"] == "complete" for row in rows.values())
    assert rows[old_embedding]["description"] == before[old_embedding]["description"]  # byte for byte
    meta = await metadata(conn, old_embedding)
    assert meta["embedding_model"] == "voyage-3" and "remake" not in meta and meta["reused_description"]
    for pointer in (old_prompt, old_model, unstamped):
        meta = await metadata(conn, pointer)
        assert meta["prompt_version"] == PROMPT_VERSION and meta["model"] == "gemini-3-flash-preview"
        assert not meta["reused_description"] and "remake" not in meta
    assert rows[current]["updated_at"] == before[current]["updated_at"]
    code, output = await run_cli(settings, "requeue", "--stale", "--dry-run")
    assert "would requeue 0 stale pointers" in output


async def test_requeue_stale_with_a_project_moves_only_that_projects_rows(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    settings = worker_settings(provider_settings, db_url)
    project, page = await make_page(conn)
    _, other_page = await make_page(conn, page_name="S-101 Framing")
    ours = await insert_pointers(conn, page, 2, title_prefix="Ours")
    theirs = await insert_pointers(conn, other_page, 2, title_prefix="Theirs")
    async with running_worker(settings):
        await watcher.until_final(4, timeout=30)
    await conn.execute(
        'UPDATE pointers SET enrichment_metadata = enrichment_metadata || \'{"prompt_version": "old"}\''
    )
    code, output = await run_cli(settings, "requeue", "--stale", "--project", str(project))
    assert code == 0, output
    statuses = dict(await conn.fetch("SELECT id, enrichment_status FROM pointers"))
    assert {statuses[p] for p in ours} == {"pending"} and {statuses[p] for p in theirs} == {"complete"}


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["requeue", "--stale", "--all-failed"], "--all-failed"),
        (["requeue", "--stale", "--lane", "backfill"], "--lane"),
        (["requeue", "--stale", "--error-like", "%x%"], "--error-like"),
        (["requeue", "--stale", "--pointer", str(uuid.uuid4())], "--pointer"),
        (["requeue", "--dry-run"], "--dry-run"),
        (["requeue", "--stale", "--project", "not-a-uuid"], "not a UUID"),
        (["embeddings", "switch", "--model", "voyage-4", "--dimensions", "0"], "--dimensions"),
        (["embeddings", "switch"], "--model"),
        (["embeddings", "promote"], "promote"),
        (["compare", "--model", "gemini-3.5-flash", "--sample", "0"], "--sample"),
        (["compare", "--model", "gemini-3.5-flash", "--seed", "x"], "--seed"),
    ],
)
def test_bad_model_options_exit_2_naming_the_option(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(argv))
    assert exited.value.code == 2
    assert named in capsys.readouterr().err
