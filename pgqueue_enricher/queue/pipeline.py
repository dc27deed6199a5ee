"""One claimed pointer from its crop to its settled row: every write of its outcome is here.

Enrich: crop → description → checkpoint, with the embedding beside it; each provider call
asks the worker's gate for its permit first and reports its outcome with that grant. Settle:
complete, retry later, fail, or write nothing when the lease was lost. Every write is fenced by the
claim (pointer, worker, attempt), so a worker that lost its lease can never overwrite the
new owner's work; and each step that costs money is followed by a write, so that a crash or
a retry never pays for the same step twice (a later attempt reuses the checkpointed
description). The worker only schedules: it claims, starts `Pipeline.process` and acts on
the `Settled` it returns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

from pgqueue_enricher.errors import EnrichmentFailure, PermanentFailure, TransientFailure
from pgqueue_enricher.logs import get_logger
from pgqueue_enricher.ops.metrics import WorkerMetrics
from pgqueue_enricher.providers import tiers
from pgqueue_enricher.providers.factory import Providers
from pgqueue_enricher.providers.references import normalise_references
from pgqueue_enricher.providers.types import Embedding, EnrichmentInput, embedding_text
from pgqueue_enricher.queue import statements
from pgqueue_enricher.queue.embedding_switch import EmbeddingPlan, Side
from pgqueue_enricher.queue.outages import DB_UNAVAILABLE
from pgqueue_enricher.queue.retry import backoff_delay
from pgqueue_enricher.redact import exception_reason
from pgqueue_enricher.settings import Settings

log = get_logger("pgqueue_enricher.queue.pipeline")

# The worker's `db(operation, *args)`: runs a queue function on the pool, over reconnects.
DbCall = Callable[..., Awaitable[Any]]
T = TypeVar("T")


class Gate(Protocol):
    """Provider admission as the pipeline sees it (the worker hands it one): a grant before
    each provider call, and the call's outcome reported with that grant."""

    async def admit(self, provider: str, text: str, image: bool = False) -> Any: ...

    async def succeeded(self, grant: Any, tokens_used: int | None) -> None: ...

    async def failed(self, grant: Any, failure: EnrichmentFailure) -> None: ...


async def gated_call(
    gate: Gate,
    provider: str,
    text: str,
    image: bool,
    call: Callable[[], Awaitable[T]],
    tokens_used: Callable[[T], int | None],
) -> T:
    """One provider call behind the gate: its permit first, then its outcome with that grant."""
    grant = await gate.admit(provider, text, image)
    try:
        result = await call()
    except EnrichmentFailure as failure:
        await gate.failed(grant, failure)
        raise
    problem = getattr(result, "provider_problem", None)
    if problem is not None:  # a usable answer that reveals a provider-wide problem
        await gate.failed(grant, problem)
    else:
        await gate.succeeded(grant, tokens_used(result))
    return result


class LeaseLost(Exception):
    """The row is no longer ours (rescued after a stall, or deleted): stop, write nothing."""


@dataclass
class Enriched:
    """What the providers made of a pointer, ready for the `complete` write."""

    description: str
    references: list[str]
    vector: list[float]
    metadata: dict[str, Any]
    timings_ms: dict[str, int] = field(default_factory=dict)
    reused_checkpoint: bool = False
    text: str = ""  # what was embedded: embedded again when an embedding switch moved on
    embedding_model: str | None = None


@dataclass(frozen=True)
class Settled:
    """How one attempt ended, as far as the worker's scheduling cares.

    `unrecorded`: the database could not be reached for the final write; the lease will
    expire and the rescue hands the row to another attempt. `retry_in` is set when the
    row went back to `pending` with a due time: nothing notifies then, so the worker wakes
    itself.
    """

    status: Literal["complete", "pending", "failed", "lease_lost", "unrecorded"]
    retry_in: float | None = None


def _ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)


def _check_context(pointer: statements.ClaimedPointer) -> None:
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


class Pipeline:
    """One worker's providers, database access and counters, shared by all its pointers."""

    def __init__(
        self,
        settings: Settings,
        worker_id: str,
        providers: Providers,
        db: DbCall,
        metrics: WorkerMetrics,
        gate: Gate,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.providers = providers
        self.db = db
        self.metrics = metrics
        self.gate = gate
        self.plan = EmbeddingPlan(db)  # the embedding switch's models (embedding_switch.py)

    async def process(self, pointer: statements.ClaimedPointer) -> Settled:
        """Enrich the pointer and settle its row; no exception but a cancel escapes."""
        started = time.perf_counter()
        fence = pointer.fence(self.worker_id)
        base = {"pointer_id": str(pointer.id), "attempt": pointer.attempt}
        try:
            if (pointer.metadata or {}).get("remake") == "shadow":
                return await self._remake_shadow(pointer, fence, base)
            enriched = await self._enrich(pointer, fence)
            await self._complete(fence, enriched)
        except LeaseLost:
            return self._lease_lost(base)
        except EnrichmentFailure as failure:
            return await self._retry_or_fail(pointer, fence, failure, base)
        except asyncio.CancelledError:
            raise
        except DB_UNAVAILABLE as exc:
            # The write could not reach the database; the lease will expire and another
            # attempt (reusing any checkpoint) will follow.
            self.metrics.db_errors += 1
            log.error("pointer_writeback_failed", **base, reason=exception_reason(exc))
            return Settled("unrecorded")
        except Exception as exc:  # one bad row must never kill the worker
            failure = TransientFailure("internal", f"unexpected {type(exc).__name__} in the worker: {exc}")
            log.exception("pointer_unexpected_error", **base)
            return await self._retry_or_fail(pointer, fence, failure, base)
        elapsed = time.perf_counter() - started
        usage = enriched.metadata.get("usage")
        self.metrics.record_completion(elapsed, enriched.timings_ms, usage or {})
        self.metrics.record_tier_usage(enriched.metadata)  # tokens and USD by tier (providers/pricing.py)
        log.info(
            "pointer_complete",
            **base,
            seconds=round(elapsed, 3),
            stages_ms=enriched.timings_ms,
            tokens=usage,
            reused_description=enriched.reused_checkpoint,
            cross_references=len(enriched.references),
        )
        return Settled("complete")

    # -- enrich ------------------------------------------------------------------------

    async def _enrich(self, pointer: statements.ClaimedPointer, fence: statements.Fence) -> Enriched:
        _check_context(pointer)
        providers = self.providers
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
            embedding = await self._embed(fence, text, timings)
        else:
            start = time.perf_counter()
            crop = await providers.store.fetch(pointer.png_path)
            timings["download_ms"] = _ms(start)
            start = time.perf_counter()
            item = EnrichmentInput(
                pointer_id=str(pointer.id),
                cropped_image_bytes=crop,
                sheet_reflection=pointer.sheet_reflection,
                page_name=pointer.page_name or "",
                discipline_name=pointer.discipline_name or "",
                pointer_title=pointer.title,
                reground_instruction=_reground_instruction(pointer.metadata),
                lane=pointer.lane,
            )
            output = await self._gated(
                providers.describer.name,
                item.prompt_text(),
                True,
                lambda: providers.describer.describe(item),
                prompt_tokens,
            )
            timings["describe_ms"] = _ms(start)
            # A lane whose tier the API refused is written down once, for `status` (providers/tiers.py).
            await record_fallbacks(providers, self.db, self.worker_id)
            description, references, text = (
                output.rich_description,
                output.cross_references,
                output.embedding_text,
            )
            metadata = {
                **output.metadata,
                "provider": providers.describer.name,
                "prompt_version": providers.prompt_version,
                "stage": statements.CHECKPOINT_STAGE,
                "described_at": datetime.now(UTC).isoformat(),
                "described_by": self.worker_id,
                "described_attempt": pointer.attempt,
                "crop_bytes": len(crop),
                "stage_ms": dict(timings),
            }
            embedding = await self._checkpoint_beside(fence, description, references, metadata, text, timings)
        metadata.pop("remake", None)
        # Stamps (`requeue --stale` compares them with the settings): present even when unknown.
        metadata.setdefault("model", None)
        metadata.setdefault("model_version", None)
        metadata.update(
            stage="complete",
            attempt=pointer.attempt,
            worker_id=self.worker_id,
            enriched_at=datetime.now(UTC).isoformat(),
            embedding_model=embedding.model,
            embedding_kind=embedding.kind,
            embedding_dimensions=len(embedding.vector),
            embedding_tokens=embedding.total_tokens,
            reused_description=stored is not None,
            stage_ms={**(metadata.get("stage_ms") or {}), **timings},
        )
        return Enriched(
            description,
            references,
            embedding.vector,
            metadata,
            timings,
            stored is not None,
            text=text,
            embedding_model=embedding.model,
        )

    async def _gated(
        self,
        provider: str,
        text: str,
        image: bool,
        call: Callable[[], Awaitable[T]],
        tokens_used: Callable[[T], int | None],
    ) -> T:
        return await gated_call(self.gate, provider, text, image, call, tokens_used)

    async def _embed(self, fence: statements.Fence, text: str, timings: dict[str, int]) -> Embedding:
        """With the model pointers.embedding holds (the switch state's, else the embedder's own)."""
        start = time.perf_counter()
        embedding = await self._embed_with(await self.plan.current(fence), text)
        timings["embed_ms"] = _ms(start)
        return embedding

    async def _embed_with(self, side: Side | None, text: str) -> Embedding:
        """One gated embedding call: the embedder's own model, or another model of an embedding
        switch through `embed_as`."""
        embedder = self.providers.embedder
        if side is None or (side.model == getattr(embedder, "model", None) and side.dimensions is None):
            call = embedder.embed
        else:
            model, dimensions = side.model, side.dimensions

            async def call(text: str) -> Embedding:
                return await embedder.embed_as(text, model, dimensions)

        return await self._gated(
            embedder.name, text, False, lambda: call(text), lambda e: e.total_tokens or None
        )

    async def _checkpoint_beside(
        self,
        fence: statements.Fence,
        description: str,
        references: list[str],
        metadata: dict[str, Any],
        text: str,
        timings: dict[str, int],
    ) -> Embedding:
        """The checkpoint write and the embedding (its permit, then the call) at the same time.

        Neither needs the other: the checkpoint keeps the paid-for description for a retry
        should the embedding fail, and that still holds because the outcome waits for both.
        An embedding failure is acted on only once the checkpoint has landed, so the retry
        reuses it; a lost lease (or a database error) on the checkpoint discards the
        embedding, whose call is cancelled or, at worst, paid once for nothing.
        """
        embedding_task = asyncio.ensure_future(self._embed(fence, text, timings))
        try:
            if not await self.db(statements.checkpoint, fence, description, references, metadata):
                raise LeaseLost()
        except BaseException:
            embedding_task.cancel()
            await asyncio.gather(embedding_task, return_exceptions=True)
            raise
        return await embedding_task

    # -- settle: each a fenced write -----------------------------------------------------

    async def _complete(self, fence: statements.Fence, enriched: Enriched) -> None:
        """The write-back, with the shadow vector while an embedding switch runs. Refused
        because the switch moved on (a cutover, a rollback, a new switch): the state is read
        again and the text embedded with its models, a few times at most."""
        for _ in range(_SWITCH_ROUNDS):
            current = await self.plan.current(fence)
            expected = current.model if current is not None else enriched.embedding_model
            if expected != enriched.embedding_model or (
                current is not None
                and current.dimensions is not None
                and len(enriched.vector) != current.dimensions
            ):
                embedding = await self._embed_with(current, enriched.text)
                enriched.vector = embedding.vector
                enriched.embedding_model = embedding.model
                enriched.metadata.update(
                    embedding_model=embedding.model,
                    embedding_kind=embedding.kind,
                    embedding_dimensions=len(embedding.vector),
                    embedding_tokens=embedding.total_tokens,
                )
            shadow_side = await self.plan.shadow(fence)
            shadow = None
            if shadow_side is not None:
                shadow_embedding = await self._embed_with(shadow_side, enriched.text)
                shadow = (shadow_side.model, shadow_embedding.vector)
            written, models_current = await self.db(
                statements.complete_checked,
                fence,
                enriched.description,
                enriched.references,
                enriched.vector,
                enriched.metadata,
                enriched.embedding_model,
                shadow,
            )
            if written:
                return
            if models_current:
                raise LeaseLost()
            await self.plan.refresh(fence)
        raise TransientFailure(
            "embedding_switch", "the embedding switch changed state during the write-back; trying again"
        )

    async def _remake_shadow(
        self, pointer: statements.ClaimedPointer, fence: statements.Fence, base: dict[str, Any]
    ) -> Settled:
        """A row queued by `embeddings switch`: its stored text embedded with the shadow's model
        only (no Gemini call), then complete again with description and embedding as they were."""
        text = embedding_text(
            pointer.title, pointer.page_name or "", pointer.discipline_name or "", pointer.description
        )
        for _ in range(_SWITCH_ROUNDS):
            side = await self.plan.shadow(fence)
            vector = (await self._embed_with(side, text)).vector if side is not None else None
            patch = {"shadow_embedded_at": datetime.now(UTC).isoformat()} if side is not None else {}
            row = await self.db(
                statements.complete_shadow, fence, side.model if side else None, vector, patch
            )
            if row["id"] is not None:
                log.info("pointer_shadow_embedded", **base, model=side.model if side else None)
                return Settled("complete")
            if row["models_current"]:
                raise LeaseLost()
            await self.plan.refresh(fence)
        raise TransientFailure(
            "embedding_switch", "the embedding switch changed state during the write-back; trying again"
        )

    async def _retry_or_fail(
        self,
        pointer: statements.ClaimedPointer,
        fence: statements.Fence,
        failure: EnrichmentFailure,
        base: dict[str, Any],
    ) -> Settled:
        """Transient: back to `pending` after a backoff (or `failed` past the last attempt)."""
        if failure.gives_attempt_back:  # provider admission: not the row's fault
            return await self._give_back(fence, failure, base)
        settings = self.settings
        patch = {
            "last_failure": {"kind": failure.kind, "attempt": pointer.attempt, "worker_id": self.worker_id}
        }
        try:
            if failure.transient and not failure.spends_attempt:
                # A wait (Flex shed, providers/tiers.py): back to pending with the attempt given back.
                delay = backoff_delay(1, settings.pass2_backoff_base, settings.pass2_backoff_max)
                delay = max(delay, failure.retry_after or 0.0)
                status = await self.db(statements.wait, fence, delay, patch)
            elif failure.transient:
                delay = backoff_delay(
                    pointer.attempt,
                    settings.pass2_backoff_base,
                    settings.pass2_backoff_max,
                    failure.retry_after,
                )
                status = await self.db(
                    statements.retry_later, fence, settings.pass2_max_attempts, failure.reason, delay, patch
                )
            else:
                delay = None
                status = await self.db(statements.fail, fence, failure.reason, patch)
        except DB_UNAVAILABLE as exc:
            log.error("pointer_failure_not_recorded", **base, reason=exception_reason(exc))
            return Settled("unrecorded")
        self.metrics.record_failure(failure.kind, transient=failure.transient)
        retry_in = delay if status == "pending" else None
        log.warning(
            "pointer_failed" if status == "failed" else "pointer_retry_scheduled",
            **base,
            failure_class="transient" if failure.transient else "permanent",
            kind=failure.kind,
            reason=failure.reason,
            retry_in_s=round(retry_in, 1) if retry_in is not None else None,
            status=status or "lease_lost",
        )
        if status is None:
            return Settled("lease_lost")
        return Settled("pending" if status == "pending" else "failed", retry_in)

    async def _give_back(
        self, fence: statements.Fence, failure: EnrichmentFailure, base: dict[str, Any]
    ) -> Settled:
        """A quota wait or a paused provider: back to `pending` with the attempt given back and
        no error recorded, due again after RetryInfo or the admission gate's next slot."""
        patch = {
            "last_wait": {"kind": failure.kind, "provider": failure.provider, "worker_id": self.worker_id}
        }
        try:
            status = await self.db(statements.wait, fence, failure.retry_after, patch)
        except DB_UNAVAILABLE as exc:
            log.error("pointer_wait_not_recorded", **base, reason=exception_reason(exc))
            return Settled("unrecorded")
        self.metrics.record_failure(failure.kind, transient=True)
        log.debug("pointer_waiting", **base, kind=failure.kind, retry_in_s=failure.retry_after)
        if status is None:
            return Settled("lease_lost")
        return Settled("pending", failure.retry_after)

    def _lease_lost(self, base: dict[str, Any]) -> Settled:
        self.metrics.lost += 1
        log.warning("pointer_lease_lost", **base, detail="rescued by another worker or deleted; not written")
        return Settled("lease_lost")


def prompt_tokens(output: Any) -> int | None:
    """Input tokens the provider counted for a describe call (its usage_metadata), if it said."""
    usage = output.metadata.get("usage") or {}
    used = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return used if isinstance(used, int) else None


# Write-backs refused in a row because the switch state moved on, before the attempt is retried.
_SWITCH_ROUNDS = 3


def _reground_instruction(metadata: dict[str, Any] | None) -> str | None:
    """Why the host's re-ground step added this region, when it said so (any other shape: none)."""
    value = (metadata or {}).get("reground_instruction")
    return value if isinstance(value, str) and value.strip() else None


async def record_fallbacks(providers: Any, db: Callable[..., Awaitable[Any]], worker_id: str) -> None:
    """Write the describer's new tier fallbacks to pgqueue_enricher_lane_tiers (for `status`).

    Best effort: the fallback is already in force and logged; a lost write only hides it
    from `status` until the next one."""
    policy = getattr(getattr(providers, "describer", None), "tiers", None)
    if not isinstance(policy, tiers.TierPolicy):
        return
    for fallback in policy.take_unrecorded():
        try:
            await db(
                statements.record_tier_fallback,
                fallback.lane,
                fallback.configured,
                fallback.effective,
                fallback.reason,
                worker_id,
            )
        except Exception as exc:  # noqa: BLE001 - never let bookkeeping fail a pointer
            log.warning("service_tier_fallback_not_recorded", lane=fallback.lane, reason=type(exc).__name__)
