"""The pool's session: prepared statements on for a direct session, off through a transaction
pooler; embeddings in pgvector's binary form."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from pgqueue_enricher.queue.connections import STATEMENT_CACHE_SIZE, statement_cache_size
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, running_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page
from tests.support.pooler import PgBouncer


async def test_a_direct_connection_gets_the_statement_cache_and_a_transaction_pooler_does_not(
    db_url: str, pooler: PgBouncer
) -> None:
    assert await statement_cache_size(db_url) == STATEMENT_CACHE_SIZE
    # PgBouncer in transaction mode, as Supabase's port 6543: a prepared name would be sent
    # to server sessions that never saw it.
    assert await statement_cache_size(pooler.url(db_url)) == 0


async def test_a_worker_on_a_direct_connection_claims_with_a_prepared_statement(
    db_url: str, provider_settings: Settings, crops: FakeServer, conn: asyncpg.Connection, watcher: RowWatcher
) -> None:
    _, page = await make_page(conn)
    settings = worker_settings(provider_settings, db_url)
    async with running_worker(settings, worker_id="prepared") as worker:
        await insert_pointers(conn, page, 3)
        assert set((await watcher.until_final(3, timeout=30)).values()) == {"complete"}
        assert worker.pool is not None
        # Every connection the pool holds at once, so the one that ran the claim is among them.
        held = [await worker.pool.acquire() for _ in range(worker.pool.get_size())]
        try:
            prepared = await asyncio.gather(
                *(c.fetch("SELECT statement FROM pg_prepared_statements") for c in held)
            )
        finally:
            for connection in held:
                await worker.pool.release(connection)
    statements = [row["statement"] for rows in prepared for row in rows]
    assert any("FOR UPDATE SKIP LOCKED" in statement for statement in statements), statements


async def test_embeddings_travel_in_binary_and_read_back_as_pgvector_stored_them(
    conn: asyncpg.Connection,
) -> None:
    vector = [0.5, -1.25, 3.0e-8, 123456.789, 0.0] + [1 / 3] * 1019
    text = await conn.fetchval("SELECT $1::vector::text", vector)
    assert text == await conn.fetchval("SELECT $1::text::vector::text", json.dumps(vector)), (
        "the binary form stores what the text form stores (float4 per element)"
    )
    assert await conn.fetchval("SELECT vector_dims($1::vector)", vector) == 1024
    assert await conn.fetchval("SELECT $1::vector", vector) == pytest.approx(vector, rel=1e-6)
    with pytest.raises(asyncpg.DataError, match="NaN not allowed in vector"):
        await conn.fetchval("SELECT $1::vector", [0.1, float("nan")])
