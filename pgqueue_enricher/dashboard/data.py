"""Every database access of the dashboard: reads for the pages, and the admin actions.

The page statements are the named blocks of sql/dashboard.sql; the status counts and the
requeues are the queue's own (queue/statements.py), so a requeue from the dashboard is
exactly a requeue from psql or the CLI.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from pgqueue_enricher.admission.provider_state import read_states
from pgqueue_enricher.queue import statements
from pgqueue_enricher.schema.sqlfiles import blocks
from pgqueue_enricher.vocabulary import ENRICHMENT_LANES

Executor = asyncpg.Pool | asyncpg.Connection
PROVIDERS = ("gemini", "voyage")
FAILURE_GROUPS = 50
ROWS_PER_GROUP = 20


def query(name: str) -> str:
    """A named statement of sql/dashboard.sql."""
    return blocks("dashboard.sql")[name]


@dataclass
class Overview:
    counts: dict[str, int]
    lanes: dict[str, dict[str, int]]
    oldest_pending_age_s: float | None
    completions: list[tuple[int, int]]  # (hour as epoch seconds, completions), oldest first
    completed_last_hour: int
    workers: list[dict[str, Any]]
    providers: list[dict[str, Any]]

    @property
    def backlog(self) -> int:
        return self.counts["pending"] + self.counts["processing"]

    @property
    def admitted_rpm(self) -> float | None:
        """Gemini's admitted rate (the gate's), else its configured limit: what bounds the pace."""
        for provider in self.providers:
            if provider["provider"] == "gemini":
                return provider["admitted_rpm"] or provider["rpm_limit"]
        return None

    @property
    def eta_s(self) -> float | None:
        """Seconds to empty the backlog at the admitted rate (else the last hour's pace)."""
        if self.backlog == 0:
            return 0.0
        rate_per_min = self.admitted_rpm or (
            self.completed_last_hour / 60 if self.completed_last_hour else None
        )
        if not rate_per_min:
            return None
        return self.backlog / rate_per_min * 60

    @property
    def eta_basis(self) -> str:
        if self.admitted_rpm:
            return f"at the admitted rate of {self.admitted_rpm:.1f} calls/min"
        if self.completed_last_hour:
            return "at the last hour's pace"
        return "no rate known yet"

    @property
    def pauses(self) -> list[dict[str, Any]]:
        return [p for p in self.providers if p["paused_since"] is not None]


async def overview(db: Executor) -> Overview:
    counts = await statements.status_counts(db)
    lanes = {lane: {"pending": 0, "processing": 0} for lane in ENRICHMENT_LANES}
    for row in await db.fetch(query("overview_lane_counts")):
        lanes.setdefault(row["lane"], {"pending": 0, "processing": 0})[row["status"]] = int(row["n"])
    completions = [
        (int(row["hour_epoch"]), int(row["n"]))
        for row in await db.fetch(query("overview_completions_per_hour"), 24)
    ]
    last_hour = await db.fetchval(query("overview_completed_last_hour"))
    return Overview(
        counts=counts,
        lanes=lanes,
        oldest_pending_age_s=await db.fetchval(query("overview_oldest_pending")),
        completions=completions,
        completed_last_hour=int(last_hour),
        workers=await workers(db),
        providers=await providers(db),
    )


async def workers(db: Executor) -> list[dict[str, Any]]:
    return [dict(row) for row in await db.fetch(query("overview_workers"))]


async def providers(db: Executor) -> list[dict[str, Any]]:
    """Provider admission rows, read as the workers and `status` read them."""
    states = await read_states(db)
    return [asdict(states[name]) for name in sorted(states)]


async def projects(db: Executor) -> list[dict[str, Any]]:
    by_project: dict[uuid.UUID, dict[str, Any]] = {}
    for row in await db.fetch(query("projects_progress")):
        total, pending, processing, failed = (
            int(row[k]) for k in ("total", "pending", "processing", "failed")
        )
        complete = max(total - pending - processing - failed, 0)
        by_project[row["project_id"]] = {
            "project_id": row["project_id"],
            "name": row["name"],
            "total": total,
            "pending": pending,
            "processing": processing,
            "failed": failed,
            "complete": complete,
            "backlog": pending + processing,
            "percent_complete": 100.0 * complete / total if total else 0.0,
            "cost_24h": 0.0,
            "cost_7d": 0.0,
        }
    for row in await db.fetch(query("projects_recent_cost")):
        if row["project_id"] in by_project:
            by_project[row["project_id"]]["cost_7d"] = row["cost_7d"] or 0.0
            by_project[row["project_id"]]["cost_24h"] = row["cost_24h"] or 0.0
    return sorted(by_project.values(), key=lambda e: (-e["backlog"], -e["failed"], e["name"] or ""))


async def failures(db: Executor) -> list[dict[str, Any]]:
    groups = [dict(row) for row in await db.fetch(query("failures_groups"), FAILURE_GROUPS)]
    keys = [g["reason_key"] for g in groups]
    rows = await db.fetch(query("failures_rows"), keys, ROWS_PER_GROUP) if keys else []
    for group in groups:
        group["rows"] = [dict(r) for r in rows if r["reason_key"] == group["reason_key"]]
    return groups


async def pointer(db: Executor, pointer_id: uuid.UUID) -> dict[str, Any] | None:
    row = await db.fetchrow(query("pointer_read"), pointer_id)
    if row is None:
        return None
    found = dict(row)
    found["metadata"] = _json_object(found["metadata"])
    references = _json_value(found["cross_references"])
    found["cross_references"] = [str(r) for r in references] if isinstance(references, list) else []
    return found


async def project_exists(db: Executor, project_id: uuid.UUID) -> bool:
    return bool(await db.fetchval(query("project_exists"), project_id))


def _json_value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _json_object(text: str | None) -> dict[str, Any]:
    value = _json_value(text)
    return value if isinstance(value, dict) else {}


# -- actions: each returns how many rows (or pauses) it touched ----------------------------


async def requeue_failed(
    db: Executor, project_id: uuid.UUID | None = None, pointer_ids: list[uuid.UUID] | None = None
) -> int:
    if project_id is None and not pointer_ids:
        return 0  # never "every failed row" by accident: the SQL API reads all NULL so
    return await statements.requeue_failed(db, project_id, pointer_ids)


async def requeue_failure_group(db: Executor, reason_key: str) -> int:
    ids = await db.fetchval(query("failures_group_ids"), reason_key)
    return await requeue_failed(db, pointer_ids=list(ids)) if ids else 0


async def move_to_lane(
    db: Executor,
    lane: str,
    project_id: uuid.UUID | None = None,
    pointer_ids: list[uuid.UUID] | None = None,
    include_complete: bool = False,
) -> int:
    if project_id is None and not pointer_ids:
        return 0
    return await statements.requeue_to_lane(db, lane, project_id, pointer_ids, include_complete)


async def resume_provider(db: Executor, provider: str) -> int:
    """Lift a provider's pause: 1 when one was lifted, 0 when it was not paused."""
    return int(bool(await db.fetchval(query("action_resume_provider"), provider)))
