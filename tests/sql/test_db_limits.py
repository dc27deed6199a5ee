"""Database limits: how many connections the worker holds, and what it does when the server
has none left for it.

The worker connects as a dedicated role whose CONNECTION LIMIT plays the part of a nearly
exhausted `max_connections` (Postgres refuses both with the same SQLSTATE 53300,
too_many_connections), without starving the other tests sharing the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import psycopg
import pytest
from sqlalchemy.engine import make_url

from pgqueue_enricher.demo import embedded_postgres as database
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, running_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page, until

_roles = itertools.count()


@dataclass
class LimitedRole:
    name: str
    url: str
    server_url: str

    def limit(self, connections: int) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {self.name} CONNECTION LIMIT {int(connections)}")


@pytest.fixture
def limited_role(pg_server: database.DatabaseHandle, db_url: str) -> Iterator[LimitedRole]:
    name = f"pgqe_limited_{os.getpid()}_{next(_roles)}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN")  # not a superuser: its limit is enforced
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {name}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}")
    url = make_url(db_url).set(username=name).render_as_string(hide_password=False)
    try:
        yield LimitedRole(name, url, pg_server.url)
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {name}")
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
            conn.execute(f"DROP ROLE IF EXISTS {name}")


async def worker_connections(conn: asyncpg.Connection, worker_id: str) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", f"pgqueue-enricher:{worker_id}"
    )


@contextlib.asynccontextmanager
async def sampling(conn: asyncpg.Connection, worker_id: str) -> AsyncIterator[list[int]]:
    """Counts of the worker's connections, sampled continuously while the block runs."""
    samples: list[int] = []

    async def sample() -> None:
        while True:
            samples.append(await worker_connections(conn, worker_id))
            await asyncio.sleep(0.005)

    task = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_worker_never_holds_more_than_max_concurrent_plus_two_connections(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    limited_role: LimitedRole,
) -> None:
    concurrency = 3
    bound = concurrency + 2
    # The bound is also the role's hard limit: one connection more would be refused and
    # counted as a database error.
    limited_role.limit(bound)
    _, page = await make_page(conn)
    pointers = await insert_pointers(conn, page, 30)
    crops.gemini.latency = 0.02
    gate = crops.gemini.hold()
    settings = worker_settings(provider_settings, limited_role.url, pass2_max_concurrent=concurrency)
    async with running_worker(settings, worker_id="limits") as worker:
        await gate.arrivals(concurrency)
        await asyncio.wait_for(worker.listener.ready.wait(), 10)
        assert await worker_connections(conn, "limits") <= bound
        async with sampling(conn, "limits") as samples:
            gate.release()
            done = await watcher.until_final(len(pointers), timeout=30)
        assert set(done.values()) == {"complete"}
        assert worker.pool is not None and worker.pool.get_max_size() == concurrency + 1
        assert worker.metrics.db_errors == 0, "no connection was refused"
        assert worker.listener.healthy and worker.listener.connects == 1
    assert max(samples) <= bound, f"{max(samples)} connections with PASS2_MAX_CONCURRENT={concurrency}"
    assert len(samples) > 10 and max(samples) >= 2, "the sampler saw the pool and the listener"
    assert crops.gemini.max_in_flight == concurrency


async def test_with_no_connection_left_the_worker_waits_then_completes_once_connections_free_up(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    limited_role: LimitedRole,
) -> None:
    limited_role.limit(2)
    hogs = [await asyncpg.connect(limited_role.url) for _ in range(2)]  # nothing left for the worker
    with pytest.raises(asyncpg.TooManyConnectionsError):
        await asyncpg.connect(limited_role.url)
    _, page = await make_page(conn)
    pointers = await insert_pointers(conn, page, 6)
    settings = worker_settings(
        provider_settings, limited_role.url, pass2_max_concurrent=3, pass2_poll_interval=0.5
    )
    async with running_worker(settings, worker_id="starved") as worker:
        task = next(t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "Worker.run")
        await until(lambda: worker.metrics.db_errors >= 2, timeout=15.0)
        assert not task.done(), "the worker gave up instead of waiting"
        assert await conn.fetchval("SELECT count(*) FROM pointers WHERE enrichment_status = 'pending'") == 6

        # One connection frees up: the worker works through the backlog on it alone.
        await hogs.pop().close()
        done = await watcher.until_final(3, timeout=20)
        assert set(done.values()) == {"complete"}

        # Everything frees up: the rest completes (the listener reconnects on its own backoff).
        await hogs.pop().close()
        done.update(await watcher.until_final(len(pointers) - 3, timeout=20))
        assert done == {str(p): "complete" for p in pointers}
        assert not task.done()
    assert await conn.fetchval("SELECT count(*) FROM pointers WHERE enrichment_status <> 'complete'") == 0
