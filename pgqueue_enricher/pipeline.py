"""Enriching one claimed pointer: crop → description → checkpoint → embedding → write-back.

Each step that costs money is followed by a fenced write, so that a crash or a retry never
pays for the same step twice: the description is checkpointed on the row before the
embedding call, and a later attempt reuses it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pgqueue_enricher import queue
from pgqueue_enricher.errors import PermanentFailure
from pgqueue_enricher.providers.factory import Providers
from pgqueue_enricher.providers.references import normalise_references
from pgqueue_enricher.providers.types import EnrichmentInput, embedding_text

# The worker's `db(operation, *args)`: runs a queue function on the pool, over reconnects.
DbCall = Callable[..., Awaitable[Any]]


class LeaseLost(Exception):
    """The row is no longer ours (rescued after a stall, or deleted): stop, write nothing."""


@dataclass
class Outcome:
    metadata: dict[str, Any]
    cross_references: int = 0
    timings_ms: dict[str, int] = field(default_factory=dict)
    reused_checkpoint: bool = False


def _ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)


def _check_context(pointer: queue.ClaimedPointer) -> None:
    if not pointer.page_found:
        raise PermanentFailure(
            "context_missing",
            "the pointer's page row is missing (page_id points to no pages row); "
            "fix page_id, then requeue the pointer",
        )
    if not pointer.discipline_found:
        raise PermanentFailure(
            "context_missing",
            "the pointer's page has no discipline row (pages.discipline_id points nowhere); "
            "fix the page, then requeue the pointer",
        )


async def enrich_pointer(
    pointer: queue.ClaimedPointer,
    worker_id: str,
    providers: Providers,
    db: DbCall,
) -> Outcome:
    _check_context(pointer)
    fence = pointer.fence(worker_id)
    timings: dict[str, int] = {}
    stored = pointer.checkpoint(providers.prompt_version, providers.describer.name)
    if stored is not None:
        description = pointer.description
        # The stored JSON may have been edited into anything: keep its strings only.
        stored_refs = pointer.cross_references
        references = normalise_references(stored_refs if isinstance(stored_refs, list) else [])
        metadata = dict(stored)
        text = embedding_text(
            pointer.title, pointer.page_name or "", pointer.discipline_name or "", description
        )
    else:
        start = time.perf_counter()
        crop = await providers.store.fetch(pointer.png_path)
        timings["download_ms"] = _ms(start)
        start = time.perf_counter()
        output = await providers.describer.describe(
            EnrichmentInput(
                pointer_id=str(pointer.id),
                cropped_image_bytes=crop,
                sheet_reflection=pointer.sheet_reflection,
                page_name=pointer.page_name or "",
                discipline_name=pointer.discipline_name or "",
                pointer_title=pointer.title,
            )
        )
        timings["describe_ms"] = _ms(start)
        description, references, text = (
            output.rich_description,
            output.cross_references,
            output.embedding_text,
        )
        metadata = {
            **output.metadata,
            "provider": providers.describer.name,
            "prompt_version": providers.prompt_version,
            "stage": queue.CHECKPOINT_STAGE,
            "described_at": datetime.now(UTC).isoformat(),
            "described_by": worker_id,
            "described_attempt": pointer.attempt,
            "crop_bytes": len(crop),
            "stage_ms": dict(timings),
        }
        if not await db(queue.checkpoint, fence, description, references, metadata):
            raise LeaseLost()
    start = time.perf_counter()
    embedding = await providers.embedder.embed(text)
    timings["embed_ms"] = _ms(start)
    metadata.update(
        stage="complete",
        attempt=pointer.attempt,
        worker_id=worker_id,
        enriched_at=datetime.now(UTC).isoformat(),
        embedding_model=embedding.model,
        embedding_kind=embedding.kind,
        embedding_dimensions=len(embedding.vector),
        embedding_tokens=embedding.total_tokens,
        reused_description=stored is not None,
        stage_ms={**(metadata.get("stage_ms") or {}), **timings},
    )
    if not await db(queue.complete, fence, description, references, embedding.vector, metadata):
        raise LeaseLost()
    return Outcome(
        metadata=metadata,
        cross_references=len(references),
        timings_ms=timings,
        reused_checkpoint=stored is not None,
    )
