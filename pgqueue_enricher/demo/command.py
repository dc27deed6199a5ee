"""`pgqueue-enricher demo`: the whole pipeline on a laptop, with no configuration.

Embedded Postgres (or DATABASE_URL), migrations, a sample project whose Experience files the
seeding trigger creates, sample drawing crops rendered into a local STORAGE_DIR, then the real
worker in drain mode. Gemini and Voyage are used when both keys are set; otherwise the local
provider (OCR + lexical embeddings) does the enrichment offline.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
from pydantic import SecretStr

from pgqueue_enricher.cli.console import ProgressBar, install_signal_handlers
from pgqueue_enricher.demo import embedded_postgres as database
from pgqueue_enricher.demo import rows
from pgqueue_enricher.logs import configure_logging
from pgqueue_enricher.queue import statements
from pgqueue_enricher.queue.worker import Worker
from pgqueue_enricher.redact import redact_url, register_settings_secrets
from pgqueue_enricher.schema import migrations
from pgqueue_enricher.settings import Settings, load_settings

DEMO_DATABASE = "pgqueue_enricher_demo"


def say(message: str = "") -> None:
    print(message, flush=True)


def prepare_database(data_dir: Path) -> tuple[str, database.DatabaseHandle | None]:
    """The demo database: DATABASE_URL as given, or a fresh database on the embedded server."""
    if os.environ.get("DATABASE_URL"):
        url = load_settings().require_database_url()
        say(f"database: DATABASE_URL ({redact_url(url)})")
        return url, None
    handle = database.start_embedded(data_dir / "pgdata", keep=True)
    with psycopg.connect(handle.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DEMO_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DEMO_DATABASE}")
    say(f"database: embedded PostgreSQL 16 + pgvector, data in {handle.data_dir}")
    return database.with_database_name(handle.url, DEMO_DATABASE), handle


async def insert_sample_project(url: str, storage_dir: Path, count: int) -> tuple[Any, list[Any]]:
    from pgqueue_enricher.demo.sample import sample_project_crops

    samples = sample_project_crops()
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            project = await rows.insert_project(conn, "Riverside Clinic (demo)", user_id="demo-user")
            disciplines: dict[str, Any] = {}
            pages: dict[str, Any] = {}
            pointers = []
            for index in range(count):
                sample = samples[index % len(samples)]
                if sample.discipline_name not in disciplines:
                    disciplines[sample.discipline_name] = await rows.insert_discipline(
                        conn, project, sample.discipline_display_name, name=sample.discipline_name
                    )
                if sample.page_name not in pages:
                    pages[sample.page_name] = await rows.insert_page(
                        conn,
                        disciplines[sample.discipline_name],
                        sample.page_name,
                        sheet_reflection=sample.sheet_reflection,
                        file_path=f"sheets/{sample.page_name.split()[0]}.pdf",
                    )
                path = storage_dir / sample.png_path
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(sample.crop.png)
                title = (
                    sample.pointer_title if index < len(samples) else f"{sample.pointer_title} ({index + 1})"
                )
                pointers.append(rows.NewPointer(pages[sample.page_name], title, sample.png_path, sample.bbox))
            # One statement for all pointers, as Pass 1 does: one doorbell ring.
            await rows.insert_pointers(conn, pointers)
        files = [
            r["path"]
            for r in await conn.fetch(
                "SELECT path FROM experience_files WHERE project_id = $1 ORDER BY path", project
            )
        ]
        say(f"sample project {project}: {len(disciplines)} disciplines, {len(pages)} pages, {count} pointers")
        say(f"experience files seeded by the trigger: {', '.join(files)}")
        return project, files
    finally:
        await conn.close()


def demo_settings(url: str, storage_dir: Path) -> Settings:
    base = load_settings()
    use_gemini = base.gemini_api_key is not None and base.voyage_api_key is not None
    update: dict[str, Any] = {
        "database_url": SecretStr(url),
        "database_listen_url": None,
        "storage_dir": str(storage_dir),
        "enricher_provider": "gemini" if use_gemini else "local",
        "pass2_poll_interval": 1.0,
    }
    if not use_gemini:
        # OCR is CPU-bound: one pointer per core keeps the machine responsive.
        update["pass2_max_concurrent"] = max(1, min(os.cpu_count() or 1, 4))
    return base.model_copy(update=update)


def print_summary(report: dict[str, Any], worker: Worker, elapsed: float) -> None:
    counts = report["counts"]
    say()
    say("summary: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    say(
        f"throughput: {counts['complete'] / elapsed:.2f} pointers/s ({counts['complete']} in {elapsed:.1f} s)"
    )
    for name, hist in sorted(worker.metrics.stages.items()):
        if hist.n:
            say(f"  {name:<10} mean {hist.total / hist.n * 1000:8.0f} ms over {hist.n}")
    for reason in report["failure_reasons"]:
        say(f"  failed: {reason['count']} x {reason['reason']}")


async def show_one_pointer(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT title, description, cross_references::text AS refs, vector_dims(embedding) AS dims, "
            "enrichment_metadata::text AS meta FROM pointers WHERE enrichment_status = 'complete' "
            "ORDER BY (title ILIKE '%wall section%') DESC, jsonb_array_length(cross_references) DESC, created_at "
            "LIMIT 1"
        )
    finally:
        await conn.close()
    if row is None:
        return False
    meta = json.loads(row["meta"])
    say()
    say(f"=== enriched pointer: {row['title']} ===")
    say(row["description"].rstrip())
    say()
    say(f"cross_references: {json.loads(row['refs'])}")
    say(f"embedding: {row['dims']} dimensions ({meta.get('embedding_model')}, {meta.get('embedding_kind')})")
    return True


async def run_pipeline(url: str, storage_dir: Path, count: int) -> int:
    await insert_sample_project(url, storage_dir, count)
    settings = demo_settings(url, storage_dir)
    register_settings_secrets(settings)
    provider = (
        f"Gemini ({settings.pass2_model}) + Voyage ({settings.voyage_model})"
        if settings.enricher_provider == "gemini"
        else "local (offline OCR + lexical embeddings; set GEMINI_API_KEY and VOYAGE_API_KEY to use Gemini + Voyage)"
    )
    say(f"provider: {provider}")
    say(f"crops: {storage_dir}")
    say(f"running the worker in drain mode, {settings.pass2_max_concurrent} at a time ...")
    stop = asyncio.Event()
    install_signal_handlers(stop)
    worker = Worker(settings, stop_event=stop, drain=True, on_progress=ProgressBar(), worker_id="demo")
    started = time.perf_counter()
    await worker.run()
    elapsed = time.perf_counter() - started
    conn = await asyncpg.connect(url)
    try:
        report = await statements.status_report(conn)
    finally:
        await conn.close()
    print_summary(report, worker, elapsed)
    shown = await show_one_pointer(url)
    return 0 if shown and report["counts"]["complete"] > 0 else 1


def run_demo(pointers: int = 12, data_dir: str | None = None) -> int:
    root = Path(data_dir or ".demo").resolve()
    storage_dir = root / "crops"
    configure_logging(os.environ.get("LOG_FORMAT", "console"), os.environ.get("LOG_LEVEL", "WARNING"))
    url, handle = prepare_database(root)
    try:
        migrations.upgrade(url)
        say(f"migrated to {migrations.current_revision(url)}")
        return asyncio.run(run_pipeline(url, storage_dir, pointers))
    finally:
        if handle is not None:
            handle.stop()
            say(f"embedded database stopped; its data stays in {handle.data_dir}")
