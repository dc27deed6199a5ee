"""What the benchmarks share: a migrated database to measure on, from the usual place."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from pgqueue_enricher import database, migrations


@contextlib.contextmanager
def migrated_database(name: str) -> Iterator[str]:
    """A fresh database on DATABASE_URL's server, a container, or a throwaway embedded one."""
    data_dir = Path(tempfile.mkdtemp(prefix="pgqe-bench-"))
    handle = database.resolve_database(data_dir / "pgdata", keep=False)
    with psycopg.connect(handle.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = database.with_database_name(handle.url, name)
    try:
        migrations.upgrade(url)
        yield url
    finally:
        with psycopg.connect(handle.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        handle.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
