"""Lanes and costs on the command line: `requeue --lane`, lanes in `status`, `status --costs`.

Cost figures are estimates from the token counts stored per pointer (see providers/pricing.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from pgqueue_enricher.cli.arguments import uuid_arg
from pgqueue_enricher.queue import statements
from pgqueue_enricher.settings import Settings
from pgqueue_enricher.vocabulary import ENRICHMENT_LANES

_SINCE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>s|m|h|d)?\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
TOKEN_KINDS = ("prompt_tokens", "cached_tokens", "output_tokens", "thoughts_tokens", "tool_use_prompt_tokens")


def _since(value: str) -> float:
    try:
        return parse_since(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_status_arguments(status: argparse.ArgumentParser) -> None:
    status.add_argument(
        "--costs", action="store_true", help="tokens and estimated USD per project and lane instead"
    )
    status.add_argument(
        "--since", type=_since, help="with --costs: only completions this recent (24h, 90m, 7d)"
    )
    status.add_argument("--project", type=uuid_arg, help="with --costs: only this project")


def add_requeue_arguments(requeue: argparse.ArgumentParser) -> None:
    requeue.add_argument(
        "--lane",
        choices=ENRICHMENT_LANES,
        help="move pending and failed pointers (of --project / --pointer, or --all) into this lane",
    )
    requeue.add_argument(
        "--complete", action="store_true", help="with --lane: complete pointers too (re-enrich them)"
    )
    requeue.add_argument("--all", action="store_true", help="with --lane: required when no filter is given")


def _usage_error(message: str) -> int:
    print(f"pgqueue-enricher: {message}", file=sys.stderr)
    return 2


def requeue_to_lane(
    args: argparse.Namespace,
    load: Callable[[argparse.Namespace], Settings],
    with_connection: Callable[[Settings, Any], Awaitable[Any]],
) -> int:
    if args.error_like or args.all_failed:
        return _usage_error(
            "requeue --lane moves pointers by --project or --pointer (or --all); "
            "--error-like and --all-failed only requeue failed pointers, without --lane"
        )
    if not (args.project or args.pointer or args.all):
        what = (
            "every pending, failed and complete pointer"
            if args.complete
            else "every pending and failed pointer"
        )
        return _usage_error(
            f"requeue --lane {args.lane} needs a filter (--project, --pointer) or --all to move {what}"
        )
    settings = load(args)

    async def work(conn: asyncpg.Connection) -> int:
        return await statements.requeue_to_lane(conn, args.lane, args.project, args.pointer, args.complete)

    print(f"requeued {asyncio.run(with_connection(settings, work))}")
    return 0


def print_lanes(report: dict[str, dict[str, Any]], settings: Settings) -> None:
    configured = {"interactive": settings.pass2_interactive_tier, "backfill": settings.pass2_backfill_tier}
    print("lanes (claimed in this order):")
    for lane, counts in report.items():
        tier = f"tier {configured.get(lane, 'standard')}"
        fallback = counts.get("tier_fallback")
        if fallback:
            since = datetime.fromtimestamp(fallback["since_epoch_s"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            tier = (
                f"tier {fallback['configured_tier']} REFUSED by the API, using {fallback['effective_tier']} "
                f"since {since} ({fallback['reason']})"
            )
        print(f"  {lane}: pending {counts['pending']}, processing {counts['processing']}; {tier}")


def status_costs(
    args: argparse.Namespace,
    load: Callable[[argparse.Namespace], Settings],
    with_connection: Callable[[Settings, Any], Awaitable[Any]],
) -> int:
    if not args.costs:
        return _usage_error("status --since and --project go with --costs")
    settings = load(args)

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        rows = await statements.cost_rows(conn, args.since, args.project)
        return cost_report(rows, args.since, args.project)

    report = asyncio.run(with_connection(settings, work))
    print(json.dumps(report) if args.json else format_cost_report(report))
    return 0


def parse_since(value: str) -> float:
    """`--since` as seconds: "24h", "90m", "7d", "3600" (seconds)."""
    match = _SINCE.match(value)
    if not match or float(match["n"]) <= 0:
        raise ValueError(f"expected a duration such as 24h, 90m, 7d or 3600, got {value!r}")
    return float(match["n"]) * _UNIT_SECONDS[(match["unit"] or "s").lower()]


def cost_report(rows: list[dict[str, Any]], since_seconds: float | None, project: uuid.UUID | None) -> dict:
    """The shape of `status --costs --json`: one entry per project and lane (tiers inside)."""
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    totals = {"pointers": 0, "estimated_cost_usd": 0.0, **dict.fromkeys(TOKEN_KINDS, 0)}
    for row in rows:
        project_id = str(row["project_id"]) if row["project_id"] is not None else None
        key = (project_id or "", row["lane"])
        entry = entries.setdefault(
            key,
            {
                "project_id": project_id,
                "lane": row["lane"],
                "pointers": 0,
                "estimated_cost_usd": 0.0,
                **dict.fromkeys(TOKEN_KINDS, 0),
                "tiers": {},
            },
        )
        cost = float(row["estimated_cost_usd"] or Decimal(0))
        tier = entry["tiers"].setdefault(row["tier"], {"pointers": 0, "estimated_cost_usd": 0.0})
        tier["pointers"] += int(row["pointers"])
        tier["estimated_cost_usd"] = round(tier["estimated_cost_usd"] + cost, 6)
        for target in (entry, totals):
            target["pointers"] += int(row["pointers"])
            target["estimated_cost_usd"] = round(target["estimated_cost_usd"] + cost, 6)
            for kind in TOKEN_KINDS:
                target[kind] += int(row[kind] or 0)
    return {
        "since_s": since_seconds,
        "project_id": str(project) if project else None,
        "projects": list(entries.values()),
        "total": totals,
    }


def format_cost_report(report: dict[str, Any]) -> str:
    since = report["since_s"]
    scope = "ever" if since is None else f"in the last {_duration(since)}"
    lines = [f"estimated Gemini cost of pointers completed {scope} (USD, from token counts)"]
    header = f"{'project':<36}  {'lane':<11} {'pointers':>8} {'input':>11} {'cached':>11} {'output':>11} {'usd':>10}"
    lines.append(header)
    for entry in report["projects"]:
        lines.append(_cost_line(entry["project_id"] or "(no project)", entry))
        tiers = ", ".join(
            f"{name} {tier['pointers']} (${tier['estimated_cost_usd']:.4f})"
            for name, tier in sorted(entry["tiers"].items())
        )
        lines.append(f"{'':<36}  {'':<11} tiers: {tiers}")
    lines.append(_cost_line("total", {**report["total"], "lane": ""}))
    return "\n".join(lines)


def _cost_line(label: str, entry: dict[str, Any]) -> str:
    output = entry["output_tokens"] + entry["thoughts_tokens"]
    fresh = entry["prompt_tokens"] - entry["cached_tokens"] + entry["tool_use_prompt_tokens"]
    return (
        f"{label:<36}  {entry['lane']:<11} {entry['pointers']:>8} {fresh:>11,} {entry['cached_tokens']:>11,} "
        f"{output:>11,} {entry['estimated_cost_usd']:>10.4f}"
    )


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit == "d" else 1) and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
