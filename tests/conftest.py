"""Shared fixtures: a real Postgres with pgvector, and the fake providers.

The server comes from pgqueue_enricher.demo.embedded_postgres (DATABASE_URL, else a pgvector container
when Docker answers, else embedded pgserver). Migrations run once into a template
database; each test gets its own database cloned from it, which costs ~0.1 s instead of a
full migration.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest

from pgqueue_enricher.demo import embedded_postgres as database
from pgqueue_enricher.queue.connections import prepare_session
from pgqueue_enricher.schema import migrations
from tests.fakes.server import FakeServer, tiny_png
from tests.support.harness import RowWatcher
from tests.support.helpers import CROP, seed_large_queue

pytest_plugins = ["tests.fakes.pytest_plugin", "tests.support.pooler"]

TEMPLATE = "pgqe_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[database.DatabaseHandle]:
    data_dir = Path(tempfile.mkdtemp(prefix="pgqe-test-"))
    handle = database.resolve_database(data_dir / "pgdata", keep=False)
    try:
        yield handle
    finally:
        handle.stop()


def admin_execute(server_url: str, *statements: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="session")
def template_url(pg_server: database.DatabaseHandle) -> str:
    suffix = os.getpid()
    name = f"{TEMPLATE}_{suffix}"
    admin_execute(pg_server.url, f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}")
    url = database.with_database_name(pg_server.url, name)
    migrations.upgrade(url)
    return url


@contextlib.contextmanager
def throwaway_database(pg_server: database.DatabaseHandle, template_url: str | None) -> Iterator[str]:
    """A database of its own, a copy of the one at `template_url` (or empty), dropped after."""
    name = f"pgqe_t{os.getpid()}_{next(_counter)}"
    template = template_url.rsplit("/", 1)[1].split("?", 1)[0] if template_url else None
    clause = f" TEMPLATE {template}" if template else ""
    admin_execute(pg_server.url, f"CREATE DATABASE {name}{clause}")
    try:
        yield database.with_database_name(pg_server.url, name)
    finally:
        admin_execute(pg_server.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db_url(pg_server: database.DatabaseHandle, template_url: str) -> Iterator[str]:
    """A fresh, migrated database for this test alone."""
    with throwaway_database(pg_server, template_url) as url:
        yield url


@pytest.fixture(scope="session")
async def large_queue_url(pg_server: database.DatabaseHandle, template_url: str) -> AsyncIterator[str]:
    """One large, mostly complete queue (tests.support.helpers.seed_large_queue: 330,000 rows
    over 200 projects, ten complete to one pending as in production), built once for the
    session: it is the suite's most expensive setup, and the plan tests that need it only read
    it. bench/claim_latency.py measures the claim on 1.1M rows. A test that claims must roll
    its claim back."""
    with throwaway_database(pg_server, template_url) as url:
        connection = await asyncpg.connect(url)
        try:
            await seed_large_queue(connection, complete=300_000, pending=30_000)
        finally:
            await connection.close()
        yield url


@pytest.fixture
async def large_queue(large_queue_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(large_queue_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def empty_db_url(pg_server: database.DatabaseHandle) -> Iterator[str]:
    """A fresh database with nothing in it (for migration tests)."""
    with throwaway_database(pg_server, None) as url:
        yield url


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_url)
    await prepare_session(connection)  # as the worker's pool: embeddings in binary
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on this test's database, for code that takes an Executor shared by tasks."""
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=4, init=prepare_session)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def crops(fake_server: FakeServer) -> FakeServer:
    """The fake providers, with a small valid PNG at the pointers' default png_path."""
    fake_server.storage.put(CROP, tiny_png())
    return fake_server


@pytest.fixture
async def watcher(conn: asyncpg.Connection) -> RowWatcher:
    """Status changes of this test's pointers, as awaitable events."""
    return await RowWatcher(conn).install()
