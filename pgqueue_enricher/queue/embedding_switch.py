"""Which embedding models a worker writes with: the switch state's (sql/models.sql), else its own.

The state row is the authority, not VOYAGE_MODEL: the write-back checks it in the same
statement (pointers_complete), so a worker whose copy is out of date writes nothing, reads
the state again and embeds anew. A worker therefore reads the state once and again only
when a write-back says it changed, at no cost per pointer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from pgqueue_enricher.providers.types import EMBEDDING_DIMENSIONS
from pgqueue_enricher.schema.sqlfiles import models_query

PHASES = ("idle", "filling", "cut_over")


@dataclass(frozen=True)
class SwitchState:
    """`current_*`: what pointers.embedding holds; `shadow_*`: what the shadow table holds (the
    new model while filling, the previous one after the cutover), None when idle."""

    phase: str
    current_model: str
    current_dimensions: int
    shadow_model: str | None = None
    shadow_dimensions: int | None = None


@dataclass(frozen=True)
class Side:
    """One model to embed with; `dimensions` None is the model's default (1024, sent as no
    `output_dimension`, which voyage-3 refuses)."""

    model: str
    dimensions: int | None

    @classmethod
    def of(cls, model: str, dimensions: int) -> Side:
        return cls(model, None if dimensions == EMBEDDING_DIMENSIONS else dimensions)


async def read_state(db: asyncpg.Pool | asyncpg.Connection) -> SwitchState | None:
    row = await db.fetchrow(models_query("embedding_switch_get"))
    if row is None:
        return None
    return SwitchState(
        row["phase"],
        row["current_model"],
        row["current_dimensions"],
        row["shadow_model"],
        row["shadow_dimensions"],
    )


async def read_state_fenced(db: asyncpg.Pool | asyncpg.Connection, _fence: Any) -> SwitchState | None:
    """`read_state` through the pipeline's fenced `db` (held over an outage like its writes)."""
    return await read_state(db)


class EmbeddingPlan:
    """One worker's copy of the switch state, read on first use and after a refused write.
    `fence` is the pointer's on whose behalf it is read (the pipeline's `db` takes one)."""

    def __init__(self, db: Callable[..., Awaitable[Any]]) -> None:
        self._db = db
        self._state: SwitchState | None = None
        self._loaded = False
        self._lock = asyncio.Lock()

    async def state(self, fence: Any) -> SwitchState | None:
        if not self._loaded:
            async with self._lock:
                if not self._loaded:
                    self._state = await self._db(read_state_fenced, fence)
                    self._loaded = True
        return self._state

    async def refresh(self, fence: Any) -> SwitchState | None:
        async with self._lock:
            self._state = await self._db(read_state_fenced, fence)
            self._loaded = True
        return self._state

    async def current(self, fence: Any) -> Side | None:
        """The model of pointers.embedding; None: no switch ever ran, the embedder's own."""
        state = await self.state(fence)
        return None if state is None else Side.of(state.current_model, state.current_dimensions)

    async def shadow(self, fence: Any) -> Side | None:
        state = await self.state(fence)
        if state is None or state.shadow_model is None or state.shadow_dimensions is None:
            return None
        return Side.of(state.shadow_model, state.shadow_dimensions)
