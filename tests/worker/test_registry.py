"""The worker registry as a deployer meets it: a role that may not write it is told so once, and
the work goes on."""

from __future__ import annotations

import itertools
import os

import asyncpg
import psycopg
import structlog.testing
from sqlalchemy.engine import make_url

from pgqueue_enricher.demo import embedded_postgres as database
from pgqueue_enricher.queue import statements
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, running_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page

_roles = itertools.count()


def admin(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


async def test_a_role_that_rls_keeps_out_of_the_registry_is_told_once_and_still_enriches(
    pg_server: database.DatabaseHandle,
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
) -> None:
    name = f"pgqe_worker_{os.getpid()}_{next(_roles)}"
    admin(pg_server.url, f"CREATE ROLE {name} LOGIN NOBYPASSRLS")
    admin(
        db_url,
        f"GRANT USAGE ON SCHEMA public TO {name}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}",
    )
    try:
        url = make_url(db_url).set(username=name).render_as_string(hide_password=False)
        watcher = await RowWatcher(conn).install()
        _, page = await make_page(conn)
        settings = worker_settings(provider_settings, url, pass2_poll_interval=0.5)
        with structlog.testing.capture_logs() as logs:
            async with running_worker(settings):
                await insert_pointers(conn, page, 2)
                assert set((await watcher.until_final(2, timeout=30)).values()) == {"complete"}
                assert (await statements.status_report(conn))["workers"] == []
        refused = [entry for entry in logs if entry["event"] == "registry_refused"]
        assert len(refused) == 1, refused
        assert "row-level security" in refused[0]["reason"] and "BYPASSRLS" in refused[0]["detail"]
    finally:
        admin(db_url, f"DROP OWNED BY {name}")
        admin(pg_server.url, f"DROP ROLE IF EXISTS {name}")
