"""Model changes on the command line: the stamps in `status`, `requeue --stale`, and `compare`.

A complete row's `enrichment_metadata` stamps say which model described it (`model`
requested, `model_version` served), under which prompt (`prompt_version`), and which model
embedded it (`embedding_model`, `embedding_dimensions`). A row whose stamps differ from the
current settings is stale; `requeue --stale` remakes exactly those, at the backfill lane's
price, and only embeds again the rows whose description is still current.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from pgqueue_enricher.providers import pricing
from pgqueue_enricher.providers.prompt import PROMPT_VERSION
from pgqueue_enricher.providers.types import EMBEDDING_DIMENSIONS
from pgqueue_enricher.queue import embedding_switch
from pgqueue_enricher.schema.sqlfiles import models_query
from pgqueue_enricher.settings import Settings

STALE_REASONS = ("prompt", "model", "embedding")
LOCAL_EMBEDDING_MODEL = "lexical-hash-1024"  # providers/local/lexical.py, without importing the extra
TOKEN_KINDS = ("prompt_tokens", "cached_tokens", "output_tokens", "thoughts_tokens", "tool_use_prompt_tokens")

Load = Callable[[argparse.Namespace], Settings]
WithConnection = Callable[[Settings, Any], Awaitable[Any]]


@dataclass(frozen=True)
class CurrentStamps:
    """What a row made now would be stamped with."""

    model: str
    prompt_version: str
    embedding_model: str
    embedding_dimensions: int


async def current_stamps(conn: asyncpg.Connection, settings: Settings) -> CurrentStamps:
    """From the settings, except the embedding side once a switch ran: then the switch state
    says what pointers.embedding holds, whatever VOYAGE_MODEL says."""
    local = settings.enricher_provider == "local"
    state = await embedding_switch.read_state(conn)
    if state is not None:
        embedding, dimensions = state.current_model, state.current_dimensions
    else:
        embedding = LOCAL_EMBEDDING_MODEL if local else settings.voyage_model
        dimensions = EMBEDDING_DIMENSIONS
    if local:
        from pgqueue_enricher.providers.local import describer  # light: no OCR import until used

        return CurrentStamps("local", describer.PROMPT_VERSION, embedding, dimensions)
    return CurrentStamps(settings.pass2_model, PROMPT_VERSION, embedding, dimensions)


async def model_stamps(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """The `models` key of `status --json`."""
    return [
        {
            "model_version": row["model_version"],
            "prompt_version": row["prompt_version"],
            "embedding_model": row["embedding_model"],
            "count": int(row["n"]),
        }
        for row in await conn.fetch(models_query("pointers_model_stamps"))
    ]


def print_model_stamps(models: list[dict[str, Any]]) -> None:
    if not models:
        return
    print("complete pointers by model version, prompt version and embedding model:")
    for entry in models:
        print(
            f"  {entry['count']:>6}  {entry['model_version'] or '(unstamped)'}  "
            f"prompt {entry['prompt_version'] or '(unstamped)'}  "
            f"embedding {entry['embedding_model'] or '(unstamped)'}"
        )


# -- requeue --stale ---------------------------------------------------------------------


def add_requeue_arguments(requeue: argparse.ArgumentParser) -> None:
    requeue.add_argument(
        "--stale",
        action="store_true",
        help="complete pointers whose model, prompt or embedding stamps differ from the settings "
        "(into the backfill lane; embedding-only ones are only embedded again)",
    )
    requeue.add_argument(
        "--dry-run", action="store_true", help="with --stale: change nothing, print counts and the cost"
    )


def _usage_error(message: str) -> int:
    print(f"pgqueue-enricher: {message}", file=sys.stderr)
    return 2


def stale_usage_error(args: argparse.Namespace) -> str | None:
    """The sentence for options that do not go with --stale (or --dry-run without it)."""
    if not args.stale:
        return "--dry-run goes with --stale" if args.dry_run else None
    clashing = [
        option
        for option, value in (
            ("--all-failed", args.all_failed),
            ("--lane", args.lane),
            ("--pointer", args.pointer),
            ("--error-like", args.error_like),
            ("--complete", args.complete),
            ("--all", args.all),
        )
        if value
    ]
    if clashing:
        return (
            f"requeue --stale does not take {', '.join(clashing)}: it selects complete pointers by their "
            "stamps (only --project and --dry-run go with it)"
        )
    return None


def estimated_cost(row: asyncpg.Record | dict[str, Any], reason: str, settings: Settings) -> float:
    """A remake's Gemini cost from the tokens the rows used when made, at the backfill lane's
    tier; an embedding-only remake makes no Gemini call."""
    if reason == "embedding":
        return 0.0
    usage = {kind: int(row[kind] or 0) for kind in TOKEN_KINDS}
    return pricing.estimate_cost_usd(
        usage, settings.pass2_backfill_tier, pricing.Prices.from_settings(settings)
    )


def requeue_stale(args: argparse.Namespace, load: Load, with_connection: WithConnection) -> int:
    problem = stale_usage_error(args)
    if problem:
        return _usage_error(problem)
    settings = load(args)

    async def work(conn: asyncpg.Connection) -> tuple[CurrentStamps, dict[str, dict[str, Any]]]:
        stamps = await current_stamps(conn, settings)
        params = (
            stamps.model,
            stamps.prompt_version,
            stamps.embedding_model,
            str(stamps.embedding_dimensions),
            args.project,
        )
        if args.dry_run:
            rows = await conn.fetch(models_query("pointers_stale_summary"), *params)
            return stamps, {
                row["reason"]: {
                    "pointers": int(row["pointers"]),
                    "estimated_cost_usd": estimated_cost(row, row["reason"], settings),
                    "embedding_tokens": int(row["embedding_tokens"] or 0),
                }
                for row in rows
            }
        rows = await conn.fetch(models_query("pointers_requeue_stale"), *params)
        return stamps, {row["reason"]: {"pointers": int(row["pointers"])} for row in rows}

    stamps, by_reason = asyncio.run(with_connection(settings, work))
    print(
        f"current: model {stamps.model}, prompt {stamps.prompt_version}, "
        f"embedding {stamps.embedding_model} ({stamps.embedding_dimensions} dims)"
    )
    total = sum(entry["pointers"] for entry in by_reason.values())
    verb = "would requeue" if args.dry_run else "requeued"
    print(f"{verb} {total} stale pointers into the backfill lane")
    for reason in STALE_REASONS:
        entry = by_reason.get(reason, {"pointers": 0})
        line = f"  {reason:<9} {entry['pointers']:>7}"
        if args.dry_run:
            line += f"  estimated ${entry['estimated_cost_usd']:.4f}"
            if reason == "embedding":
                line += f" (no Gemini call; ~{entry['embedding_tokens']:,} Voyage tokens)"
        print(line)
    if args.dry_run:
        dollars = sum(entry.get("estimated_cost_usd", 0.0) for entry in by_reason.values())
        print(
            f"estimated Gemini cost: ${dollars:.4f} at the {settings.pass2_backfill_tier} tier "
            "(from the tokens each row used when it was made; PASS2_PRICE_*)"
        )
    return 0


# -- compare -------------------------------------------------------------------------------


def add_compare_parser(commands: Any) -> None:
    from pgqueue_enricher.cli import compare as compare_module

    compare_module.add_parser(commands)


def compare(args: argparse.Namespace, load: Load, with_connection: WithConnection) -> int:
    from pgqueue_enricher.cli import compare as compare_module

    return compare_module.run(args, load, with_connection)
