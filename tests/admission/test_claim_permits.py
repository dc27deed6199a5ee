"""Permits riding on the statement before their call: with a limit set, a gated Gemini call's
permit is drawn by the claim and a gated Voyage call's by the checkpoint, so neither costs a
permit statement of its own; each slot is the one a statement of its own would give, and a
grant that no call used is dropped with its row."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from pgqueue_enricher.admission.gate import (
    HEADROOM,
    Admission,
    GatedDescriber,
    GatedEmbedder,
    Permit,
    current_pointer,
    describe_tokens,
    embed_tokens,
    read_states,
)
from pgqueue_enricher.errors import TransientFailure
from pgqueue_enricher.providers.types import EnrichmentInput
from pgqueue_enricher.queue import statements
from pgqueue_enricher.settings import Settings, load_settings
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, running_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page


class NamedGemini:
    """Only a name: the gate looks at nothing else of the describer to put its permits on the claim."""

    name = "gemini"


class NamedVoyage:
    """Only a name, likewise, for the permits that ride on the checkpoint."""

    name = "voyage"


def gate_on(pool: asyncpg.Pool, **settings: Any) -> Admission:
    async def db(operation: Any, *args: Any, attempts: int = 1) -> Any:
        return await operation(pool, *args)

    gate = Admission(load_settings(_env_file=None, **settings), "w1", db)
    gate.describer = GatedDescriber(NamedGemini(), gate)
    gate.embedder = GatedEmbedder(NamedVoyage(), gate)
    return gate


async def claimed_fence(pool: asyncpg.Pool, conn: asyncpg.Connection) -> statements.Fence:
    """A row claimed the plain way, for the checkpoints below."""
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 1)
    (pointer,) = await statements.claim(pool, 1, "w1", 60)
    return pointer.fence("w1")


async def checkpoint(gate: Admission, pool: asyncpg.Pool, fence: statements.Fence, text: str) -> bool:
    return await gate.checkpoint(pool, fence, "## described", [], {"stage": "described"}, text)


async def embedding_admitted(gate: Admission, fence: statements.Fence, text: str) -> Permit:
    """The embedding call of the fence's pointer, admitted as from that pointer's own task."""
    token = current_pointer.set(str(fence.pointer_id))
    try:
        return await gate.admit("voyage", embed_tokens(text))
    finally:
        current_pointer.reset(token)


async def test_the_claim_reserves_each_row_s_slot_from_the_same_token_estimate_as_the_call(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    reflection = "Ø 12\u2033 GWB — fire-rated ✓ " * 40  # characters, not bytes, are counted
    _, page = await make_page(conn, page_name="A-501 Wändé", sheet_reflection=reflection)
    await insert_pointers(conn, page, 2, title_prefix="Détail ß")
    gate = gate_on(pool, pass2_gemini_tpm=60_000)
    await gate.start()
    assert gate.describer is not None

    pointers = await gate.claim(5, "w1", 60)

    assert len(pointers) == 2
    first, second = (gate.advance[("gemini", str(pointer.id))][0] for pointer in pointers)
    assert first.reserved and second.reserved and first.slot and second.slot
    # A token budget alone spaces the calls by their tokens: the gap is the first call's estimate.
    estimate = describe_tokens(
        EnrichmentInput(
            pointer_id=str(pointers[0].id),
            cropped_image_bytes=b"",
            sheet_reflection=pointers[0].sheet_reflection,
            page_name=pointers[0].page_name or "",
            discipline_name=pointers[0].discipline_name or "",
            pointer_title=pointers[0].title,
        ),
        gate.describer.instruction_chars,
    )
    gap = (second.slot - first.slot).total_seconds()
    assert abs(gap - estimate * 60 / (60_000 * HEADROOM)) < 1e-4, (gap, estimate)
    state = (await read_states(pool))["gemini"]
    assert state.admitted_total == 2 and gate.permits["gemini"].carried == 2
    assert gate.permits["gemini"].statements == 0, "the permits cost no statement besides the claim"

    gate.settled(pointers[0].id)
    gate.settled(pointers[1].id)
    assert gate.advance == {}


async def test_a_claim_that_finds_nothing_draws_nothing_and_keeps_the_token_correction(
    pool: asyncpg.Pool,
) -> None:
    gate = gate_on(pool, pass2_gemini_tpm=60_000)
    await gate.start()
    gate.permits["gemini"].correct(500)

    assert await gate.claim(3, "w1", 60) == []

    assert gate.permits["gemini"].correction == 500, "charged by the next statement, not lost"
    assert (await read_states(pool))["gemini"].admitted_total == 0


async def test_ungated_or_probing_claims_are_the_plain_claim(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 2)
    ungated = gate_on(pool)
    await ungated.start()
    assert len(await ungated.claim(1, "w1", 60)) == 1 and ungated.advance == {}

    probing = gate_on(pool, pass2_gemini_rpm=600)
    await probing.start()
    probing.probe = ("gemini", None)  # the probe passes the gate: nothing to reserve for it
    assert len(await probing.claim(1, "w2", 60)) == 1 and probing.advance == {}
    assert (await read_states(pool))["gemini"].admitted_total == 0


async def test_the_checkpoint_reserves_the_embedding_s_slot_from_the_call_s_own_estimate(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    gate = gate_on(pool, pass2_voyage_tpm=60_000)
    await gate.start()
    fence = await claimed_fence(pool, conn)
    text = "Détail ß — 2 × 4 studs @ 16″ o.c. " * 30

    assert await checkpoint(gate, pool, fence, text)
    assert await checkpoint(gate, pool, fence, text)  # a retry of the write draws a second slot

    first = (await read_states(pool))["voyage"]
    assert first.admitted_total == 2 and gate.permits["voyage"].carried == 2
    assert gate.permits["voyage"].statements == 0
    grant, _ = gate.advance[("voyage", str(fence.pointer_id))]
    assert grant.reserved and grant.slot is not None
    # The second slot follows the first by the call's estimate (characters, not bytes).
    assert abs(grant.wait_s - embed_tokens(text) * 60 / (60_000 * HEADROOM)) < 0.05
    stored = await conn.fetchval("SELECT description FROM pointers WHERE id = $1", fence.pointer_id)
    assert stored == "## described"

    permit = await embedding_admitted(gate, fence, text)
    assert permit.slot == grant.slot and gate.permits["voyage"].statements == 0, "the call used the grant"
    assert gate.advance == {}


async def test_a_checkpoint_whose_lease_is_lost_writes_and_draws_nothing_and_keeps_the_correction(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    gate = gate_on(pool, pass2_voyage_tpm=60_000)
    await gate.start()
    fence = await claimed_fence(pool, conn)
    gate.permits["voyage"].correct(300)
    lost = statements.Fence(fence.pointer_id, "someone-else", fence.attempt)

    assert not await checkpoint(gate, pool, lost, "text")

    assert gate.permits["voyage"].correction == 300, "charged by the next statement, not lost"
    assert (await read_states(pool))["voyage"].admitted_total == 0 and gate.advance == {}
    assert await conn.fetchval("SELECT description FROM pointers WHERE id = $1", fence.pointer_id) == ""


async def test_a_refused_checkpoint_grant_makes_the_embedding_wait_for_the_gate_s_slot(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    gate = gate_on(pool, pass2_voyage_rpm=60)
    await gate.start()
    await conn.execute(
        "UPDATE pgqueue_enricher_provider_state SET next_free_at = now() + interval '1 hour' "
        "WHERE provider = 'voyage'"
    )
    fence = await claimed_fence(pool, conn)

    assert await checkpoint(gate, pool, fence, "text"), "the description is kept all the same"

    with pytest.raises(TransientFailure) as refused:
        await embedding_admitted(gate, fence, "text")
    assert refused.value.kind == "gate_wait" and refused.value.scope == "wait"
    assert 3500 < (refused.value.retry_after or 0) <= 3600
    assert (await read_states(pool))["voyage"].admitted_total == 0


async def test_ungated_or_paused_checkpoints_are_the_plain_checkpoint(
    pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    fence = await claimed_fence(pool, conn)
    ungated = gate_on(pool)
    await ungated.start()
    assert not ungated.checkpoint_carries_permit()
    assert await checkpoint(ungated, pool, fence, "text") and ungated.advance == {}

    paused = gate_on(pool, pass2_voyage_rpm=600)
    await paused.start()
    assert paused.checkpoint_carries_permit()
    await conn.execute(
        "UPDATE pgqueue_enricher_provider_state SET paused_since = now(), paused_kind = 'voyage_key' "
        "WHERE provider = 'voyage'"
    )
    await paused.refresh()
    assert not paused.checkpoint_carries_permit()
    assert await checkpoint(paused, pool, fence, "text") and paused.advance == {}
    assert (await read_states(pool))["voyage"].admitted_total == 0


async def test_a_gated_worker_pays_no_permit_statement_for_gemini_and_keeps_no_grant(
    db_url: str, provider_settings: Settings, crops: FakeServer, conn: asyncpg.Connection, watcher: RowWatcher
) -> None:
    _, page = await make_page(conn)
    settings = worker_settings(provider_settings, db_url, pass2_gemini_rpm=60_000, pass2_voyage_rpm=60_000)
    async with running_worker(settings, worker_id="riding") as worker:
        await insert_pointers(conn, page, 12)
        assert set((await watcher.until_final(12, timeout=30)).values()) == {"complete"}
        gemini, voyage = worker.admission.permits["gemini"], worker.admission.permits["voyage"]
        assert (gemini.carried, gemini.statements) == (12, 0)
        assert (voyage.carried, voyage.statements) == (12, 0), "Voyage's permits ride on the checkpoints"
        assert worker.admission.advance == {}, "every grant was used by its call or dropped"
    states = await read_states(conn)
    assert states["gemini"].admitted_total == 12 and states["voyage"].admitted_total == 12
    assert crops.gemini.calls == 12
