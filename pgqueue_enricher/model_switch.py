"""Switching the embedding model without ever mixing two vector spaces in pointers.embedding.

`switch` starts filling a shadow table with the new model's vectors (rows queued in the
backfill lane, embedded again by Voyage alone; rows enriched meanwhile get both vectors).
`cutover` swaps shadow and column in one transaction once every vector has its counterpart,
so a reader sees all old or all new vectors; the previous ones stay in the shadow, and
`rollback` swaps them back, until `finalize` drops them. Every step first locks pointers
against writes (readers go on): the worker's write-back checks the switch state in the same
statement, and one queued behind the lock reads the state this step leaves
(sql/models.sql embedding_switch_lock_pointers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from pgqueue_enricher.providers.types import EMBEDDING_DIMENSIONS
from pgqueue_enricher.queue import embedding_switch
from pgqueue_enricher.queue.embedding_switch import SwitchState
from pgqueue_enricher.schema.sqlfiles import models_query, query

MAX_DIMENSIONS = 16000  # pgvector's limit for the vector type


class SwitchRefused(Exception):
    """The step cannot run in the switch's present state; the message says what to do."""


@dataclass(frozen=True)
class Swapped:
    rows: int
    seconds_locked: float | None = None


async def column_dimensions(conn: asyncpg.Connection) -> int:
    typmod = await conn.fetchval(models_query("pointers_embedding_column_dimensions"))
    return int(typmod) if typmod and typmod > 0 else EMBEDDING_DIMENSIONS


async def _lock(conn: asyncpg.Connection) -> SwitchState | None:
    await conn.execute(models_query("embedding_switch_lock_pointers"))
    return await embedding_switch.read_state(conn)


async def _put(
    conn: asyncpg.Connection,
    phase: str,
    current: tuple[str, int],
    shadow: tuple[str, int] | None,
) -> None:
    await conn.execute(
        models_query("embedding_switch_put"),
        phase,
        current[0],
        current[1],
        shadow[0] if shadow else None,
        shadow[1] if shadow else None,
    )


async def start(
    conn: asyncpg.Connection, configured_model: str, model: str, dimensions: int | None
) -> tuple[SwitchState, int]:
    """Start (or, for the same target, resume) a switch; returns the state and the rows queued."""
    new_dimensions = dimensions or EMBEDDING_DIMENSIONS
    async with conn.transaction():
        state = await _lock(conn)
        if state is not None and state.phase == "filling":
            if (state.shadow_model, state.shadow_dimensions) != (model, new_dimensions):
                raise SwitchRefused(
                    f"a switch to {state.shadow_model} ({state.shadow_dimensions} dims) is in progress: "
                    "cut it over, or abandon it with `embeddings finalize`, before starting another"
                )
        elif state is not None and state.phase == "cut_over":
            raise SwitchRefused(
                f"the switch to {state.current_model} is cut over but not finalized: run "
                "`embeddings finalize` (or `embeddings rollback`) before starting another"
            )
        current = (
            (state.current_model, state.current_dimensions)
            if state is not None
            else (configured_model, await column_dimensions(conn))
        )
        if current == (model, new_dimensions):
            raise SwitchRefused(f"pointers.embedding already holds {model} ({new_dimensions} dims)")
        await _put(conn, "filling", current, (model, new_dimensions))
        queued = await conn.fetchval(models_query("pointers_queue_shadow_fill"), model)
        new_state = await embedding_switch.read_state(conn)
    assert new_state is not None
    return new_state, int(queued)


async def missing(conn: asyncpg.Connection, model: str) -> dict[str, int]:
    rows = await conn.fetch(models_query("embedding_switch_missing"), model)
    return {row["status"]: int(row["n"]) for row in rows}


async def progress(conn: asyncpg.Connection) -> dict[str, Any]:
    """`embeddings status --json`."""
    state = await embedding_switch.read_state(conn)
    report: dict[str, Any] = {
        "phase": state.phase if state else "idle",
        "current_model": state.current_model if state else None,
        "current_dimensions": state.current_dimensions if state else await column_dimensions(conn),
        "shadow_model": state.shadow_model if state else None,
        "shadow_dimensions": state.shadow_dimensions if state else None,
        "projects": [],
        "missing": 0,
    }
    if state is not None and state.shadow_model is not None:
        rows = await conn.fetch(models_query("embedding_switch_progress"), state.shadow_model)
        report["projects"] = [
            {
                "project_id": str(row["project_id"]) if row["project_id"] else None,
                "with_vector": int(row["with_vector"]),
                "shadowed": int(row["shadowed"]),
                "missing": int(row["missing"]),
            }
            for row in rows
        ]
        report["missing"] = sum(project["missing"] for project in report["projects"])
    return report


async def _swap(conn: asyncpg.Connection, state: SwitchState) -> int:
    """Inside the caller's locked transaction: column and shadow trade their vectors."""
    assert state.shadow_model is not None and state.shadow_dimensions is not None
    absent = await missing(conn, state.shadow_model)
    if absent:
        counts = ", ".join(f"{n} {status}" for status, n in absent.items())
        raise SwitchRefused(
            f"{sum(absent.values())} pointers have no {state.shadow_model} vector yet ({counts}): "
            "let the workers fill them (`embeddings status`), or run `embeddings switch` again to "
            "queue the complete ones"
        )
    if state.shadow_dimensions == state.current_dimensions:
        row = await conn.fetchrow(
            models_query("embedding_swap"), state.current_model, state.current_dimensions
        )
        return int(row["swapped"])
    await conn.execute(models_query("embedding_swap_save_current"))
    schema = await conn.fetchval(query("vector_type_schema")) or "public"
    # DDL takes no parameters: a quoted identifier and an integer are all that is formatted in.
    retype = models_query("pointers_embedding_retype").format(
        vector_schema=_quote_ident(schema), dimensions=int(state.shadow_dimensions)
    )
    await conn.execute(retype)
    row = await conn.fetchrow(
        models_query("embedding_swap_fill_pointers"), state.current_model, state.current_dimensions
    )
    return int(row["swapped"])


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def cutover(conn: asyncpg.Connection) -> tuple[SwitchState, int]:
    return await _trade(
        conn, "filling", "cut_over", "no switch is filling: start one with `embeddings switch --model NEW`"
    )


async def rollback(conn: asyncpg.Connection) -> tuple[SwitchState, int]:
    """The previous vectors back into pointers.embedding; the switch is filling again (the new
    vectors stay in the shadow: cut over again, or abandon with finalize)."""
    return await _trade(
        conn, "cut_over", "filling", "nothing to roll back: no switch is cut over (or it was finalized)"
    )


async def _trade(conn: asyncpg.Connection, phase: str, then: str, refusal: str) -> tuple[SwitchState, int]:
    """Cutover and rollback are one move: in a switch at `phase`, column and shadow trade their
    vectors and models, and the switch goes to `then`, all in one transaction."""
    async with conn.transaction():
        state = await _lock(conn)
        if state is None or state.phase != phase:
            raise SwitchRefused(refusal)
        rows = await _swap(conn, state)
        assert state.shadow_model is not None and state.shadow_dimensions is not None
        await _put(
            conn,
            then,
            (state.shadow_model, state.shadow_dimensions),
            (state.current_model, state.current_dimensions),
        )
        new_state = await embedding_switch.read_state(conn)
    assert new_state is not None
    return new_state, rows


async def finalize(conn: asyncpg.Connection) -> tuple[SwitchState, str, int]:
    """After a cutover: the previous vectors are dropped (no rollback from here). While filling:
    the switch is abandoned, its vectors dropped and its queued rows complete again."""
    async with conn.transaction():
        state = await _lock(conn)
        if state is None or state.phase == "idle":
            raise SwitchRefused("no switch to finalize")
        what = "finalized" if state.phase == "cut_over" else "abandoned"
        restored = 0
        if state.phase == "filling":
            restored = int(await conn.fetchval(models_query("pointers_unqueue_shadow_fill")))
        await conn.execute(models_query("embedding_shadow_clear"))
        await _put(conn, "idle", (state.current_model, state.current_dimensions), None)
        new_state = await embedding_switch.read_state(conn)
    assert new_state is not None
    return new_state, what, restored
