"""The registry of live workers (table pgqueue_enricher_workers): who runs where, and how it is.

Why a table and not pg_stat_activity: behind a pooler the server connections keep and share
their application_name, so exited workers would linger and live ones flicker. A row that
each worker refreshes with its heartbeat is right behind any pooler; a
clean stop deletes it, and a crashed worker's row stops counting after HEARTBEATS_TO_EXPIRE
missed heartbeats.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import asyncpg

from pgqueue_enricher.aio import set_within
from pgqueue_enricher.logs import get_logger
from pgqueue_enricher.redact import exception_reason, scrub
from pgqueue_enricher.schema.sqlfiles import query

HEARTBEATS_TO_EXPIRE = 3
REFUSED_FIX = (
    "the worker cannot write pgqueue_enricher_workers, so `status` will not list it: connect as "
    "the role that ran the migration or one with BYPASSRLS (Supabase: postgres), or add a row "
    "level security policy for this role on that table"
)
log = get_logger("pgqueue_enricher.ops.registry")


def heartbeat_interval(lease_seconds: float) -> float:
    """Often enough that `status` notices a crash within seconds, whatever the lease."""
    return min(max(lease_seconds / 3, 0.5), 10.0)


def package_version() -> str:
    try:
        return metadata.version("pgqueue-enricher")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class Report:
    """What a worker says about itself at each heartbeat."""

    in_flight: int
    listener_state: str
    provider_pause: str | None


class Registry:
    """One worker's row: registered at start, refreshed every `interval`, removed at a clean stop."""

    def __init__(
        self,
        worker_id: str,
        interval: float,
        report: Callable[[], Report],
        db: Callable[..., Awaitable[Any]],
    ) -> None:
        self.worker_id = worker_id
        self.interval = interval
        self.report = report
        self.db = db  # the worker's `db(operation, *args)`, over reconnects
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.version = package_version()
        self.last_beat: float | None = None  # monotonic time of the last beat the database took
        self.beat_failed: str | None = None  # why the last beat failed, while it does

    async def _beat(self, executor: Any) -> None:
        report = self.report()
        await executor.execute(
            query("workers_beat"),
            self.worker_id,
            self.host,
            self.pid,
            self.version,
            report.in_flight,
            report.listener_state,
            scrub(report.provider_pause) if report.provider_pause else None,
            self.interval * HEARTBEATS_TO_EXPIRE,
        )

    async def beat(self) -> None:
        await self.db(self._beat, attempts=1)
        self.last_beat = time.monotonic()
        self.beat_failed = None

    async def run(self, closing: asyncio.Event, unavailable: tuple[type[BaseException], ...]) -> None:
        """Beat every `interval` until `closing`; a beat the database refuses is tried at the next one."""
        refused_logged = False
        while not closing.is_set():
            try:
                await self.beat()
            except unavailable as exc:
                self.beat_failed = exception_reason(exc)
                log.warning("registry_beat_failed", reason=self.beat_failed)
            except asyncpg.PostgresError as exc:
                # Not an outage: typically a role that is neither the table's owner nor BYPASSRLS
                # (RLS is on and grants no policy). The worker works on, unlisted; say so once.
                self.beat_failed = exception_reason(exc)
                if not refused_logged:
                    log.error("registry_refused", reason=self.beat_failed, detail=REFUSED_FIX)
                    refused_logged = True
            await set_within(closing, self.interval)

    async def remove(self) -> None:
        await self.db(lambda executor: executor.execute(query("workers_remove"), self.worker_id), attempts=2)
