"""What the benchmarks share: a migrated database to measure on, instant providers, seeding."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
from pydantic import SecretStr

from pgqueue_enricher.demo import embedded_postgres as database
from pgqueue_enricher.demo import rows
from pgqueue_enricher.providers.factory import Providers
from pgqueue_enricher.providers.types import Embedding, EnrichmentInput, EnrichmentOutput
from pgqueue_enricher.schema import migrations
from pgqueue_enricher.settings import Settings


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


# -- instant providers: only the queue's own work is left to measure ----------------------

VECTOR = [0.03125] * 1024
# A few KB of markdown, as a real description would be.
DESCRIPTION = (
    "## Description\nTypical exterior wall section at the second floor line.\n\n"
    "## Dimensions\n"
    + "".join(f"- {n}'-{n % 12}\" clear between gridlines {n} and {n + 1}\n" for n in range(40))
    + "\n## Schedule\n| Mark | Material | Thickness |\n|---|---|---|\n"
    + "".join(f'| W{n} | TYPE X GWB | 5/8" |\n' for n in range(40))
    + "\n## Cross-References\n- S-101\n- Detail 3/A501\n- 09 21 16\n"
)
REFERENCES = ["S-101", "Detail 3/A501", "09 21 16"]


class InstantStore:
    async def open(self) -> None:
        return None

    async def fetch(self, png_path: str | None) -> bytes:
        return b"\x89PNG\r\n\x1a\n"

    async def aclose(self) -> None:
        return None


class InstantDescriber:
    name = "bench"
    prompt_version = "bench-1"

    async def open(self) -> None:
        return None

    async def describe(self, item: EnrichmentInput) -> EnrichmentOutput:
        return EnrichmentOutput(DESCRIPTION, list(REFERENCES), item.pointer_title, {"usage": {}})

    async def aclose(self) -> None:
        return None


class InstantEmbedder:
    name = "bench"

    async def open(self) -> None:
        return None

    async def embed(self, text: str) -> Embedding:
        return Embedding(VECTOR, "bench", 0, "bench")

    async def aclose(self) -> None:
        return None


def instant_providers(describer: InstantDescriber | None = None) -> Providers:
    """Instant providers under their own names: the admission gate does not stand before them
    (the gate is judged against a provider with latency, bench/quota.py)."""
    return Providers(InstantStore(), describer or InstantDescriber(), InstantEmbedder())  # type: ignore[arg-type]


def bench_settings(url: str, **overrides: Any) -> Settings:
    """Settings for an in-process worker, from nothing in the environment."""
    values: dict[str, Any] = {
        "database_url": SecretStr(url),
        "storage_dir": tempfile.gettempdir(),
        "enricher_provider": "local",
        "pass2_poll_interval": 1.0,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def seed_page(
    conn: asyncpg.Connection, page_name: str, *, sheet_reflection: str | None = None
) -> tuple[uuid.UUID, uuid.UUID]:
    """A page in a discipline of a project of its own; (project_id, page_id)."""
    return await rows.insert_page_with_parents(
        conn, page_name, discipline="A", sheet_reflection=sheet_reflection, project_name="b", user_id="b"
    )


async def seed_pointers(url: str, count: int) -> uuid.UUID:
    """An empty database but for a project, a discipline, a page and `count` pending
    pointers on it; returns the page."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE projects CASCADE")
        _, page = await seed_page(conn, "A-501", sheet_reflection="Wall sections and details.")
        await rows.insert_pointers(
            conn, [rows.NewPointer(page, f"Detail {n}", "crops/x.png") for n in range(1, count + 1)]
        )
        return page
    finally:
        await conn.close()


def rss_mb() -> float:
    """This process's resident set size (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")
