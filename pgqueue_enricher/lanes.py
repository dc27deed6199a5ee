"""Lanes and costs on the command line: `requeue --lane`, lanes in `status`, `status --costs`.

Kept apart from cli.py so that the scheduling options live in one place; cli.py calls in
with a line per command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from pgqueue_enricher import costs, queue
from pgqueue_enricher.settings import Settings
from pgqueue_enricher.vocabulary import ENRICHMENT_LANES


def _since(value: str) -> float:
    try:
        return costs.parse_since(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value!r}") from None


def add_status_arguments(status: argparse.ArgumentParser) -> None:
    status.add_argument(
        "--costs", action="store_true", help="tokens and estimated USD per project and lane instead"
    )
    status.add_argument(
        "--since", type=_since, help="with --costs: only completions this recent (24h, 90m, 7d)"
    )
    status.add_argument("--project", type=_uuid, help="with --costs: only this project")


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
        return await queue.requeue_to_lane(conn, args.lane, args.project, args.pointer, args.complete)

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
        rows = await queue.cost_rows(conn, args.since, args.project)
        return costs.cost_report(rows, args.since, args.project)

    report = asyncio.run(with_connection(settings, work))
    print(json.dumps(report) if args.json else costs.format_cost_report(report))
    return 0
