"""Every database access of the worker and the CLI, one function per named statement.

The statements live in sql/queries.sql. Functions take anything asyncpg can execute on (a
pool or a connection); none of them relies on a prepared statement surviving a transaction,
so they also work through a transaction pooler (Supabase's port 6543), where the worker's
pool prepares nothing (pgqueue_enricher.queue.connections).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from pgqueue_enricher.schema.sqlfiles import models_query, query
from pgqueue_enricher.vocabulary import ENRICHMENT_LANES, ENRICHMENT_STATUSES

Executor = asyncpg.Pool | asyncpg.Connection

CHECKPOINT_STAGE = "described"


@dataclass(frozen=True)
class Fence:
    """Identifies one claim: a write-back succeeds only while this claim still holds the row."""

    pointer_id: uuid.UUID
    worker_id: str
    attempt: int


@dataclass(frozen=True)
class ClaimedPointer:
    id: uuid.UUID
    title: str
    png_path: str | None
    attempt: int
    description: str
    cross_references: list[Any] | None
    metadata: dict[str, Any] | None
    page_found: bool
    page_name: str | None
    sheet_reflection: str | None
    discipline_found: bool
    discipline_name: str | None
    lane: str = "interactive"  # LANES: decides the service tier of the Gemini call

    def fence(self, worker_id: str) -> Fence:
        return Fence(self.id, worker_id, self.attempt)

    def checkpoint(self, prompt_version: str, provider: str) -> dict[str, Any] | None:
        """The stored description of an earlier attempt, if it can be reused.

        Reused only when written by the same provider and prompt version: after a prompt
        change, a requeued row is described again.
        """
        meta = self.metadata or {}
        if (
            meta.get("stage") == CHECKPOINT_STAGE
            and meta.get("prompt_version") == prompt_version
            and meta.get("provider") == provider
            and self.description
        ):
            return meta
        return None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


async def claim(db: Executor, limit: int, worker_id: str, lease_seconds: float) -> list[ClaimedPointer]:
    if limit <= 0:
        return []
    rows = await db.fetch(query("pointers_claim"), limit, worker_id, float(lease_seconds))
    return [claimed_pointer(row) for row in rows]


def claimed_pointer(row: asyncpg.Record) -> ClaimedPointer:
    return ClaimedPointer(
        id=row["id"],
        title=row["title"],
        png_path=row["png_path"],
        attempt=row["attempt"],
        description=row["description"] or "",
        cross_references=json.loads(row["cross_references"]) if row["cross_references"] else None,
        metadata=json.loads(row["metadata"]) if row["metadata"] else None,
        page_found=row["page_found"],
        page_name=row["page_name"],
        sheet_reflection=row["sheet_reflection"],
        discipline_found=row["discipline_found"],
        discipline_name=row["discipline_name"],
        lane=row["lane"],
    )


async def checkpoint(
    db: Executor, fence: Fence, description: str, cross_references: list[str], metadata: dict[str, Any]
) -> bool:
    row = await db.fetchval(
        query("pointers_checkpoint"),
        fence.pointer_id,
        fence.worker_id,
        fence.attempt,
        description,
        _json(cross_references),
        _json(metadata),
    )
    return row is not None


async def complete(
    db: Executor,
    fence: Fence,
    description: str,
    cross_references: list[str],
    vector: list[float],
    metadata: dict[str, Any],
    embedding_model: str | None = None,
) -> bool:
    written, _ = await complete_checked(
        db, fence, description, cross_references, vector, metadata, embedding_model, None
    )
    return written


async def complete_checked(
    db: Executor,
    fence: Fence,
    description: str,
    cross_references: list[str],
    vector: list[float],
    metadata: dict[str, Any],
    embedding_model: str | None,
    shadow: tuple[str, list[float]] | None,
) -> tuple[bool, bool]:
    """The write-back; (written, models current). Not written with models not current: an
    embedding switch moved on since the worker read its state (sql/queries.sql)."""
    row = await db.fetchrow(
        query("pointers_complete"),
        fence.pointer_id,
        fence.worker_id,
        fence.attempt,
        description,
        _json(cross_references),
        vector,
        _json(metadata),
        embedding_model,
        shadow[1] if shadow else None,
        shadow[0] if shadow else None,
    )
    return row["id"] is not None, bool(row["models_current"])


async def complete_shadow(
    db: Executor, fence: Fence, shadow_model: str | None, vector: list[float] | None, metadata: dict[str, Any]
) -> asyncpg.Record:
    """A `remake: shadow` row back to complete with its shadow vector (sql/models.sql)."""
    return await db.fetchrow(
        models_query("pointers_complete_shadow"),
        fence.pointer_id,
        fence.worker_id,
        fence.attempt,
        shadow_model,
        vector,
        _json(metadata),
    )


async def retry_later(
    db: Executor, fence: Fence, max_attempts: int, error: str, delay_seconds: float, metadata: dict[str, Any]
) -> str | None:
    """Returns the new status ('pending' or 'failed'), or None when the claim was lost."""
    return await db.fetchval(
        query("pointers_retry_later"),
        fence.pointer_id,
        fence.worker_id,
        fence.attempt,
        max_attempts,
        error,
        float(delay_seconds),
        _json(metadata),
    )


async def fail(db: Executor, fence: Fence, error: str, metadata: dict[str, Any]) -> str | None:
    return await db.fetchval(
        query("pointers_fail"), fence.pointer_id, fence.worker_id, fence.attempt, error, _json(metadata)
    )


async def release(db: Executor, pointer_ids: list[uuid.UUID], worker_id: str) -> list[uuid.UUID]:
    if not pointer_ids:
        return []
    rows = await db.fetch(query("pointers_release"), pointer_ids, worker_id)
    return [row["id"] for row in rows]


async def extend_leases(
    db: Executor, pointer_ids: list[uuid.UUID], worker_id: str, lease_seconds: float
) -> set[uuid.UUID]:
    if not pointer_ids:
        return set()
    rows = await db.fetch(query("pointers_extend_leases"), pointer_ids, worker_id, float(lease_seconds))
    return {row["id"] for row in rows}


async def rescue_expired(
    db: Executor, max_attempts: int, lease_seconds: float, batch: int = 500
) -> list[tuple[uuid.UUID, str]]:
    """Expired leases back to the queue; lease-less rows of other tools get a lease to expire."""
    rows = await db.fetch(query("pointers_rescue_expired"), max_attempts, batch, float(lease_seconds))
    return [(row["id"], row["enrichment_status"]) for row in rows]


async def count_unfinished(db: Executor) -> tuple[int, int]:
    row = await db.fetchrow(query("pointers_count_unfinished"))
    return int(row["pending"]), int(row["processing"])


async def status_counts(db: Executor) -> dict[str, int]:
    """Rows per status, every status present (an index-only scan of the status index)."""
    counts = dict.fromkeys(ENRICHMENT_STATUSES, 0)
    for row in await db.fetch(query("pointers_status_counts")):
        counts[row["status"]] = int(row["n"])
    return counts


async def status_report(db: Executor, reasons: int = 5) -> dict[str, Any]:
    """The shape of `status --json` (a contract: docs/operating.md)."""
    counts = await status_counts(db)
    queue_row = await db.fetchrow(query("pointers_status_queue"))
    age = queue_row["oldest_pending_age_s"]
    return {
        "counts": counts,
        "oldest_pending_age_s": round(float(age), 1) if age is not None else None,
        "retrying": int(queue_row["retrying"]),
        "failure_reasons": [
            {"reason": row["reason"], "count": int(row["n"])}
            for row in await db.fetch(query("pointers_status_failure_reasons"), reasons)
        ],
        "workers": await live_workers(db),
        "completed_last_hour": int(await db.fetchval(query("pointers_status_completed_last_hour"))),
        "processing_without_lease": int(await db.fetchval(query("pointers_status_without_lease"))),
        **await lane_report(db),
        "unresolved_references": await unresolved_references(db),
    }


async def live_workers(db: Executor) -> list[dict[str, Any]]:
    """The `workers` of `status --json`: worker_id and in_flight (the contract), and the rest."""
    return [
        {
            "worker_id": row["worker_id"],
            "in_flight": int(row["in_flight"]),
            "host": row["host"],
            "pid": row["pid"],
            "version": row["version"],
            "started_at": row["started_at"].isoformat(),
            "heartbeat_at": row["heartbeat_at"].isoformat(),
            "listener_state": row["listener_state"],
            "provider_pause": row["provider_pause"],
        }
        for row in await db.fetch(query("workers_live"))
    ]


async def unresolved_references(
    db: Executor, project_id: uuid.UUID | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The `unresolved_references` of `status --json`: sheets referenced that no page of the
    project has, most referenced first, at most `limit` rows (a contract: docs/cross-references.md)."""
    rows = await db.fetch(query("cross_references_unresolved"), project_id, limit)
    return [{"project_id": str(r["project_id"]), "sheet": r["sheet"], "count": int(r["n"])} for r in rows]


async def cross_reference_links(
    db: Executor, project_id: uuid.UUID | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """References of complete pointers with their targets (`pgqueue-enricher references`)."""
    rows = await db.fetch(query("cross_references_links"), project_id, limit)
    return [
        {key: str(value) if isinstance(value, uuid.UUID) else value for key, value in row.items()}
        for row in rows
    ]


async def requeue_failed(
    db: Executor,
    project_id: uuid.UUID | None = None,
    pointer_ids: list[uuid.UUID] | None = None,
    error_like: str | None = None,
) -> int:
    return int(await db.fetchval(query("pointers_requeue_failed"), project_id, pointer_ids, error_like))


# -- lanes, waits and the cost ledger (sql/definitions/scheduling.sql) ------------------------


async def wait(
    db: Executor, fence: Fence, delay_seconds: float | None, metadata: dict[str, Any]
) -> str | None:
    """Back to pending after the delay (None: due at once) with the attempt given back
    ('pending'), or None when the claim was lost. For a call the provider shed or refused for
    quota, or a provider paused for the whole fleet: not the row's fault."""
    return await db.fetchval(
        query("pointers_wait"),
        fence.pointer_id,
        fence.worker_id,
        fence.attempt,
        None if delay_seconds is None else float(delay_seconds),
        _json(metadata),
    )


async def requeue_to_lane(
    db: Executor,
    lane: str,
    project_id: uuid.UUID | None = None,
    pointer_ids: list[uuid.UUID] | None = None,
    include_complete: bool = False,
) -> int:
    return int(
        await db.fetchval(query("pointers_requeue_to_lane"), lane, project_id, pointer_ids, include_complete)
    )


async def lane_report(db: Executor) -> dict[str, Any]:
    """The `lanes` key of `status --json`: queue rows per lane, and each lane's tier fallback."""
    lanes: dict[str, dict[str, Any]] = {
        lane: {"pending": 0, "processing": 0, "tier_fallback": None} for lane in ENRICHMENT_LANES
    }
    for row in await db.fetch(query("pointers_status_lanes")):
        lanes.setdefault(row["lane"], {"pending": 0, "processing": 0, "tier_fallback": None})
        lanes[row["lane"]][row["status"]] = int(row["n"])
    for row in await db.fetch(query("lane_tiers_status")):
        if row["lane"] in lanes:
            lanes[row["lane"]]["tier_fallback"] = {
                "configured_tier": row["configured_tier"],
                "effective_tier": row["effective_tier"],
                "reason": row["reason"],
                "worker_id": row["worker_id"],
                "since_epoch_s": round(float(row["changed_at"]), 3),
            }
    return {"lanes": lanes}


async def record_tier_fallback(
    db: Executor, lane: str, configured: str, effective: str, reason: str, worker_id: str
) -> None:
    await db.execute(query("lane_tiers_fall_back"), lane, configured, effective, reason, worker_id)


async def cost_rows(
    db: Executor, since_seconds: float | None = None, project_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    rows = await db.fetch(query("pointers_costs"), since_seconds, project_id)
    return [dict(row) for row in rows]
