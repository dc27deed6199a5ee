"""Switching the embedding model: the shadow fills without a Gemini call, pointers.embedding
never holds two models, and cutover and rollback are each one transaction."""

from __future__ import annotations

import asyncio
import json
import math
import uuid

import asyncpg
import pytest

from pgqueue_enricher import model_switch
from pgqueue_enricher.demo import rows
from pgqueue_enricher.providers.types import embedding_text
from pgqueue_enricher.queue import statements
from pgqueue_enricher.schema.sqlfiles import models_query
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer, fake_vector
from tests.support.harness import RowWatcher, run_cli, running_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, abs_tol=1e-6) for x, y in zip(a, b, strict=True))


async def models_per_project(conn: asyncpg.Connection) -> dict[uuid.UUID, set[str]]:
    found: dict[uuid.UUID, set[str]] = {}
    for row in await conn.fetch(models_query("pointers_embedding_models")):
        found.setdefault(row["project_id"], set()).add(row["model"])
    return found


async def test_a_switch_fills_the_shadow_by_voyage_alone_and_no_project_ever_holds_two_models(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=4)
    project_a, page_a = await make_page(conn)
    project_b, page_b = await make_page(conn, page_name="S-201 Framing")
    done = await insert_pointers(conn, page_a, 6, title_prefix="A") + await insert_pointers(
        conn, page_b, 6, title_prefix="B"
    )
    async with running_worker(settings):
        await watcher.until_final(12, timeout=30)
    gemini_before = crops.gemini.calls

    code, output = await run_cli(settings, "embeddings", "switch", "--model", "voyage-4")
    assert code == 0, output
    assert "12 pointers queued" in output
    samples: list[dict[uuid.UUID, set[str]]] = []
    crops.voyage.latency = 0.05  # a fill that lasts several samples

    async def sample(stop: asyncio.Event) -> None:
        reader = await asyncpg.connect(db_url)
        try:
            while not stop.is_set():
                samples.append(await models_per_project(reader))
                await asyncio.sleep(0.1)  # the sampling period, not a synchronisation
        finally:
            await reader.close()

    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(stop))
    async with running_worker(settings):
        fresh = await insert_pointers(conn, page_a, 2, title_prefix="New")  # enriched during the switch
        await watcher.until_final(14, timeout=60)
    stop.set()
    await sampler
    assert len(samples) >= 3
    for seen in samples:
        assert all(models == {"voyage-3"} for models in seen.values()), seen
    assert crops.gemini.calls - gemini_before == 2, "only the two new pointers are described"

    report = await model_switch.progress(conn)
    assert report["phase"] == "filling" and report["missing"] == 0
    assert {p["project_id"]: p["shadowed"] for p in report["projects"]} == {
        str(project_a): 8,
        str(project_b): 6,
    }
    for row in await conn.fetch(
        "SELECT p.id, p.title, p.description, p.embedding, s.model, s.embedding AS shadow "
        "FROM pointers p JOIN pgqueue_enricher_embedding_shadow s ON s.pointer_id = p.id"
    ):
        page = "A-501 Wall Sections" if row["title"][0] in "AN" else "S-201 Framing"
        text = embedding_text(row["title"], page, "Architectural", row["description"])
        assert row["model"] == "voyage-4"
        assert close(list(row["embedding"]), fake_vector(text)), (
            "pointers.embedding changed before the cutover"
        )
        assert close(list(row["shadow"]), fake_vector("voyage-4:" + text))
    assert set(done + fresh) == {row["id"] for row in await conn.fetch("SELECT id FROM pointers")}

    code, output = await run_cli(settings, "embeddings", "status", "--json")
    assert json.loads(output)["missing"] == 0
    code, output = await run_cli(settings, "embeddings", "cutover")
    assert code == 0, output
    assert await models_per_project(conn) == {project_a: {"voyage-4"}, project_b: {"voyage-4"}}
    # A pointer enriched after the cutover is embedded with the new model, and its previous
    # model's vector goes to the shadow (a rollback stays complete).
    async with running_worker(settings):
        [late] = await insert_pointers(conn, page_b, 1, title_prefix="Late")
        await watcher.until_final(1, timeout=30)
    meta = json.loads(await conn.fetchval("SELECT enrichment_metadata FROM pointers WHERE id = $1", late))
    assert meta["embedding_model"] == "voyage-4"
    assert (
        await conn.fetchval("SELECT model FROM pgqueue_enricher_embedding_shadow WHERE pointer_id = $1", late)
        == "voyage-3"
    )


async def seed_switch(conn: asyncpg.Connection, count: int, *, dimensions: int = 1024) -> list[uuid.UUID]:
    """`count` complete rows whose vector starts with +1 (old model) and a shadow of each
    starting with -1 (new model), as a finished fill leaves them."""
    _, page = await make_page(conn)
    ids = await rows.insert_pointers(
        conn, [rows.NewPointer(page, f"P {n}", None, status="complete") for n in range(count)]
    )
    old = [1.0] + [0.0] * 1023
    new = [-1.0] + [0.0] * (dimensions - 1)
    await conn.execute(
        "UPDATE pointers SET embedding = $1, enrichment_metadata = "
        """'{"embedding_model": "voyage-3", "embedding_dimensions": 1024}'""",
        old,
    )
    await conn.execute(
        "INSERT INTO pgqueue_enricher_embedding_shadow (pointer_id, model, dimensions, embedding) "
        "SELECT id, 'voyage-4', $2, $1 FROM pointers",
        new,
        dimensions,
    )
    await conn.execute(
        "INSERT INTO pgqueue_enricher_embedding_switch (phase, current_model, current_dimensions, "
        "shadow_model, shadow_dimensions) VALUES ('filling', 'voyage-3', 1024, 'voyage-4', $1)",
        dimensions,
    )
    return ids


SIGNS = "SELECT DISTINCT sign((embedding::real[])[1]) AS s FROM pointers WHERE embedding IS NOT NULL"


async def wait_until_blocked(conn: asyncpg.Connection, pid: int) -> None:
    for _ in range(500):
        if await conn.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the step never reached the held row")


@pytest.mark.parametrize("step", ["cutover", "rollback"])
async def test_cutover_and_rollback_are_each_one_transaction(
    db_url: str, conn: asyncpg.Connection, step: str
) -> None:
    ids = await seed_switch(conn, 2000)
    if step == "rollback":
        await model_switch.cutover(conn)
    before = {row["s"] for row in await conn.fetch(SIGNS)}
    assert len(before) == 1
    blocker = await asyncpg.connect(db_url)
    runner = await asyncpg.connect(db_url)
    try:
        holding = blocker.transaction()
        await holding.start()
        await blocker.execute("SELECT 1 FROM pointers WHERE id = $1 FOR UPDATE", ids[1500])
        task = asyncio.create_task(getattr(model_switch, step)(runner))
        await wait_until_blocked(conn, runner.get_server_pid())
        # Mid-step: some rows are rewritten (uncommitted), the reader still sees all old.
        assert {row["s"] for row in await conn.fetch(SIGNS)} == before
        await holding.rollback()
        state, swapped = await task
        assert swapped == 2000
    finally:
        await blocker.close()
        await runner.close()
    after = {row["s"] for row in await conn.fetch(SIGNS)}
    assert len(after) == 1 and after != before
    assert state.phase == ("cut_over" if step == "cutover" else "filling")


async def test_a_cutover_to_other_dimensions_retypes_the_column_and_a_rollback_restores_it(
    conn: asyncpg.Connection,
) -> None:
    await seed_switch(conn, 50, dimensions=256)
    state, _ = await model_switch.cutover(conn)
    assert (state.current_model, state.current_dimensions) == ("voyage-4", 256)
    assert await model_switch.column_dimensions(conn) == 256
    assert await conn.fetchval("SELECT count(*) FROM pointers WHERE vector_dims(embedding) = 256") == 50
    assert {row["s"] for row in await conn.fetch(SIGNS)} == {-1}
    state, _ = await model_switch.rollback(conn)
    assert await model_switch.column_dimensions(conn) == 1024
    assert {row["s"] for row in await conn.fetch(SIGNS)} == {1}
    _, what, _ = await model_switch.finalize(conn)
    assert (
        what == "abandoned"
        and await conn.fetchval("SELECT count(*) FROM pgqueue_enricher_embedding_shadow") == 0
    )


async def test_the_cutover_refuses_while_a_vector_lacks_its_counterpart(conn: asyncpg.Connection) -> None:
    ids = await seed_switch(conn, 5)
    await conn.execute("DELETE FROM pgqueue_enricher_embedding_shadow WHERE pointer_id = $1", ids[0])
    with pytest.raises(model_switch.SwitchRefused, match="1 pointers have no voyage-4 vector yet"):
        await model_switch.cutover(conn)
    assert {row["s"] for row in await conn.fetch(SIGNS)} == {1}


async def test_a_write_back_with_a_model_the_switch_does_not_name_writes_nothing(
    conn: asyncpg.Connection,
) -> None:
    [pointer] = await seed_switch(conn, 1)
    await model_switch.cutover(conn)
    await conn.execute(
        "UPDATE pointers SET enrichment_status = 'processing', enrichment_locked_by = 'w', "
        "enrichment_attempts = 1 WHERE id = $1",
        pointer,
    )
    fence = statements.Fence(pointer, "w", 1)
    vector = [0.5] + [0.0] * 1023
    assert await statements.complete_checked(conn, fence, "d", [], vector, {}, "voyage-3", None) == (
        False,
        False,
    )
    assert await statements.complete_checked(
        conn, fence, "d", [], vector, {}, "voyage-4", ("voyage-3", vector)
    ) == (True, True)


async def test_a_second_switch_is_refused_until_the_first_is_cut_over_or_abandoned(
    conn: asyncpg.Connection,
) -> None:
    await seed_switch(conn, 3)
    with pytest.raises(model_switch.SwitchRefused, match="a switch to voyage-4 .* is in progress"):
        await model_switch.start(conn, "voyage-3", "voyage-4-large", None)
    state, queued = await model_switch.start(conn, "voyage-3", "voyage-4", None)  # the same: resumes
    assert state.phase == "filling" and queued == 0
    await model_switch.cutover(conn)
    with pytest.raises(model_switch.SwitchRefused, match="not finalized"):
        await model_switch.start(conn, "voyage-3", "voyage-4-large", None)
    state, what, _ = await model_switch.finalize(conn)
    assert what == "finalized" and (state.phase, state.current_model) == ("idle", "voyage-4")
    assert await conn.fetchval("SELECT count(*) FROM pgqueue_enricher_embedding_shadow") == 0
    with pytest.raises(model_switch.SwitchRefused, match="already holds voyage-4"):
        await model_switch.start(conn, "voyage-3", "voyage-4", None)
