"""`pgqueue-enricher embeddings switch|status|cutover|rollback|finalize` (model_switch.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from pgqueue_enricher import model_switch
from pgqueue_enricher.settings import Settings

Load = Callable[[argparse.Namespace], Settings]
WithConnection = Callable[[Settings, Any], Awaitable[Any]]


def _dimensions(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= model_switch.MAX_DIMENSIONS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to {model_switch.MAX_DIMENSIONS}, got {value!r}"
        )
    return number


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "embeddings", help="switch the embedding model without mixing two vector spaces"
    )
    steps = parser.add_subparsers(dest="step", required=True)
    switch = steps.add_parser("switch", help="start filling the new model's vectors beside the current ones")
    switch.add_argument("--model", required=True, help="the Voyage model to switch to (e.g. voyage-4)")
    switch.add_argument(
        "--dimensions", type=_dimensions, help="its output dimensions (default: the model's 1024)"
    )
    status = steps.add_parser("status", help="the switch's phase and progress per project")
    status.add_argument("--json", action="store_true", help="print only JSON on stdout")
    steps.add_parser("cutover", help="swap the new vectors into pointers.embedding (one transaction)")
    steps.add_parser("rollback", help="swap the previous vectors back (until finalize)")
    steps.add_parser("finalize", help="drop the previous vectors (or abandon a switch still filling)")


def _refused(message: str) -> int:
    print(f"pgqueue-enricher: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace, load: Load, with_connection: WithConnection) -> int:
    if args.step == "switch" and not args.model.strip():
        print("pgqueue-enricher: --model must name a Voyage model", file=sys.stderr)
        return 2
    settings = load(args)
    if args.step == "switch" and settings.enricher_provider == "local":
        print(
            "pgqueue-enricher: embeddings switch needs Voyage: ENRICHER_PROVIDER=local embeds only "
            "with its own model",
            file=sys.stderr,
        )
        return 2

    async def work(conn: asyncpg.Connection) -> Any:
        if args.step == "switch":
            return await model_switch.start(conn, settings.voyage_model, args.model.strip(), args.dimensions)
        if args.step == "status":
            return await model_switch.progress(conn)
        started = time.perf_counter()
        result = await getattr(model_switch, args.step)(conn)
        return result, time.perf_counter() - started

    try:
        result = asyncio.run(with_connection(settings, work))
    except model_switch.SwitchRefused as refused:
        return _refused(str(refused))
    if args.step == "switch":
        state, queued = result
        print(
            f"switching from {state.current_model} ({state.current_dimensions} dims) to "
            f"{state.shadow_model} ({state.shadow_dimensions} dims): {queued} pointers queued in the "
            "backfill lane to be embedded again (no Gemini call); `embeddings status` shows progress"
        )
    elif args.step == "status":
        _print_status(result, args.json)
    elif args.step == "finalize":
        (state, what, restored), seconds = result
        extra = f"; {restored} queued pointers are complete again" if restored else ""
        print(f"switch {what}: pointers.embedding holds {state.current_model}{extra}")
    else:
        (state, rows), seconds = result
        print(
            f"{args.step}: {rows} vectors swapped in {seconds:.2f} s; pointers.embedding now holds "
            f"{state.current_model} ({state.current_dimensions} dims), the shadow {state.shadow_model}"
        )
    return 0


def _print_status(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    print(
        f"phase: {report['phase']}; pointers.embedding: {report['current_model'] or '(VOYAGE_MODEL)'} "
        f"({report['current_dimensions']} dims)"
    )
    if report["shadow_model"]:
        print(
            f"shadow: {report['shadow_model']} ({report['shadow_dimensions']} dims); missing: {report['missing']}"
        )
        for project in report["projects"]:
            print(
                f"  {project['project_id'] or '(no project)'}: {project['shadowed']}/{project['with_vector']}"
                f" filled, {project['missing']} missing"
            )
