"""How the worker's pool talks to Postgres: statements prepared once on a direct session,
unprepared through a transaction pooler, embeddings in pgvector's binary form, and no reset
round trip on release."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import asyncpg

from pgqueue_enricher.schema.sqlfiles import query

# asyncpg's own default size; the worker runs about twenty distinct statements.
STATEMENT_CACHE_SIZE = 100


async def statement_cache_size(url: str) -> int:
    """The pool's statement cache for `url`: on for a direct connection, off behind a pooler.

    With the cache, asyncpg prepares each statement once per connection and then sends only
    Bind/Execute: one round trip and no planning per claim instead of two round trips and a
    fresh plan (the pickup latency's largest share). A transaction pooler (Supabase's port
    6543, PgBouncer in transaction mode) hands the next transaction to a server session that
    never saw the prepared name, so there the cache must stay off. A pooler answers the
    client's startup with a cancel key of its own, so the process id the connection was
    given differs from the backend's own pg_backend_pid(): that tells the two apart with no
    setting to forget. A session pooler differs too and goes without the cache: slower by a
    round trip, never wrong.
    """
    connection = await asyncpg.connect(url, statement_cache_size=0, timeout=10)
    try:
        direct = connection.get_server_pid() == await connection.fetchval(query("session_backend_pid"))
    finally:
        await connection.close()
    return STATEMENT_CACHE_SIZE if direct else 0


async def keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset hook: nothing to undo, so no extra round trip on every release.

    asyncpg's default reset runs "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL" each time a connection goes back to the pool: one more round trip per
    statement. The worker's pooled statements take no advisory locks, open no cursors,
    LISTEN on no pooled connection (the listener has its own) and SET nothing; asyncpg
    still rolls back an open transaction before calling this hook. Prepared statements are
    session state worth keeping.
    """


def encode_vector(vector: Sequence[float]) -> bytes:
    """pgvector's binary input (vector_recv): dimensions and a zero as 16-bit integers, then
    each element as a big-endian float4. NaN and infinity are sent as they are, for pgvector
    to refuse, as it refuses them in text."""
    return struct.pack(f">HH{len(vector)}f", len(vector), 0, *vector)


def decode_vector(data: bytes) -> list[float]:
    (dimensions,) = struct.unpack_from(">H", data)
    return list(struct.unpack_from(f">{dimensions}f", data, 4))


async def prepare_session(connection: asyncpg.Connection) -> None:
    """Pool init hook: `vector` values travel in pgvector's binary form.

    Why: pgvector's text form makes the worker format 1,024 decimal numbers per pointer
    (Python's shortest float repr), the largest single Python cost on the event loop, where
    packing the float4s is nearly free. The type is found by
    name wherever the extension put it (`public`, or Supabase's `extensions`). Codecs are
    the client's state, so this works the same through a transaction pooler.
    """
    schema = await connection.fetchval(query("vector_type_schema"))
    if schema is not None:
        await connection.set_type_codec(
            "vector", schema=schema, encoder=encode_vector, decoder=decode_vector, format="binary"
        )
