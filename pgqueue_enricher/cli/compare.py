"""`pgqueue-enricher compare --model CANDIDATE`: a candidate model tried on stored pointers.

N complete pointers (reproducibly drawn with the seed) are described by the candidate under
the current prompt, one Gemini call each and no retry, and its figures printed beside those
of the stored answers. Nothing is written to `pointers`: the results go to stdout and, with
--output, to a JSON file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from pgqueue_enricher.admission.gate import Admission
from pgqueue_enricher.cli.arguments import positive_int, uuid_arg, whole_number
from pgqueue_enricher.errors import EnrichmentFailure
from pgqueue_enricher.providers import pricing
from pgqueue_enricher.providers.local.rules import find_dimensions
from pgqueue_enricher.providers.prompt import SECTION_HEADINGS
from pgqueue_enricher.providers.references import normalise_references
from pgqueue_enricher.providers.types import EnrichmentInput, EnrichmentOutput
from pgqueue_enricher.queue.pipeline import gated_call, prompt_tokens
from pgqueue_enricher.redact import scrub
from pgqueue_enricher.schema.sqlfiles import models_query
from pgqueue_enricher.settings import Settings

Load = Callable[[argparse.Namespace], Settings]
WithConnection = Callable[[Settings, Any], Awaitable[Any]]
TOKEN_KINDS = ("prompt_tokens", "output_tokens", "thoughts_tokens", "tool_use_prompt_tokens")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "compare", help="try a candidate Gemini model on stored pointers, writing nothing to them"
    )
    parser.add_argument("--model", required=True, help="the candidate model id (e.g. gemini-3.5-flash)")
    parser.add_argument("--sample", type=positive_int, default=20, help="how many pointers (default 20)")
    parser.add_argument("--project", type=uuid_arg, help="only pointers of this project")
    parser.add_argument(
        "--seed", type=whole_number, default=0, help="which sample (the same seed, the same pointers)"
    )
    parser.add_argument("--json", action="store_true", help="print only JSON on stdout")
    parser.add_argument("--output", type=Path, help="also write the results to this JSON file")


def figures(description: str, references: list[str], usage: dict[str, Any]) -> dict[str, Any]:
    """What is compared, for one answer."""
    return {
        "tokens": sum(int(usage.get(kind) or 0) for kind in TOKEN_KINDS),
        "sections": [heading[3:] for heading in SECTION_HEADINGS if heading in description],
        "references": len(references),
        "dimensions": len(find_dimensions(description)),
        "description_chars": len(description),
    }


def agreement(stored: list[str], candidate: list[str]) -> float | None:
    """Shared references over all references of either answer (1.0: the same set)."""
    union = set(stored) | set(candidate)
    return None if not union else round(len(set(stored) & set(candidate)) / len(union), 3)


async def _describe(gate: Admission, describer: Any, item: EnrichmentInput) -> tuple[EnrichmentOutput, float]:
    """The candidate's one call for this pointer, through the fleet's gate: it shares the
    workers' limits, and a refusal or an outage it meets counts for the fleet like theirs."""
    started = time.perf_counter()
    output = await gated_call(
        gate, "gemini", item.prompt_text(), True, lambda: describer.describe(item), prompt_tokens
    )
    return output, time.perf_counter() - started


async def compare(conn: asyncpg.Connection, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from pgqueue_enricher.admission.provider_state import provider_report
    from pgqueue_enricher.providers.gemini import GeminiDescriber
    from pgqueue_enricher.providers.storage import open_crop_store

    paused = [p for p in await provider_report(conn) if p["provider"] == "gemini" and p["paused"]]
    if paused:
        raise CompareRefused(
            "Gemini is paused for the fleet ("
            + scrub(paused[0]["paused"].get("reason") or "no reason")
            + "): compare makes no call until it is resumed"
        )
    sample = await conn.fetch(
        models_query("pointers_compare_sample"), args.sample, args.project, str(args.seed)
    )
    # A candidate served under another name is a finding of the comparison (its stamp shows
    # it), not a reason to pause the fleet's own model.
    candidate_settings = settings.model_copy(
        update={"pass2_model": args.model, "pass2_on_model_substitution": "accept"}
    )
    prices = pricing.Prices.from_settings(settings)

    async def db(operation: Callable[..., Awaitable[Any]], *params: Any, attempts: int = 1) -> Any:
        return await operation(conn, *params)

    gate = Admission(settings, f"compare-{os.getpid()}", db)
    await gate.refresh()
    describer = GeminiDescriber(candidate_settings)
    store = open_crop_store(settings)
    await describer.open()
    await store.open()
    results: list[dict[str, Any]] = []
    try:
        for row in sample:
            stored_meta = json.loads(row["metadata"]) if row["metadata"] else {}
            stored_refs = json.loads(row["cross_references"]) if row["cross_references"] else []
            stored_refs = normalise_references(stored_refs if isinstance(stored_refs, list) else [])
            stored_usage = stored_meta.get("usage") or {}
            entry: dict[str, Any] = {
                "pointer_id": str(row["id"]),
                "title": row["title"],
                "stored": {
                    **figures(row["description"], stored_refs, stored_usage),
                    "model_version": stored_meta.get("model_version"),
                    "estimated_cost_usd": stored_meta.get("estimated_cost_usd"),
                    "latency_s": (stored_meta.get("gemini_ms") or 0) / 1000 or None,
                },
            }
            try:
                crop = await store.fetch(row["png_path"])
                output, seconds = await _describe(
                    gate,
                    describer,
                    EnrichmentInput(
                        pointer_id=str(row["id"]),
                        cropped_image_bytes=crop,
                        sheet_reflection=row["sheet_reflection"],
                        page_name=row["page_name"] or "",
                        discipline_name=row["discipline_name"] or "",
                        pointer_title=row["title"],
                    ),
                )
            except EnrichmentFailure as failure:
                entry["candidate"] = {"error": scrub(failure.reason)}
            else:
                usage = output.metadata.get("usage") or {}
                entry["candidate"] = {
                    **figures(output.rich_description, output.cross_references, usage),
                    "model_version": output.metadata.get("model_version"),
                    "estimated_cost_usd": pricing.estimate_cost_usd(usage, "standard", prices),
                    "latency_s": round(seconds, 3),
                    "reference_agreement": agreement(stored_refs, output.cross_references),
                }
            results.append(entry)
    finally:
        await describer.aclose()
        await store.aclose()
    return {"model": args.model, "seed": args.seed, "pointers": results, "total": _totals(results)}


def _totals(results: list[dict[str, Any]]) -> dict[str, Any]:
    def total(side: str, key: str) -> float:
        return round(sum(float(r[side].get(key) or 0) for r in results if key in r[side]), 6)

    answered = [r for r in results if "error" not in r["candidate"]]
    agreements = [
        r["candidate"]["reference_agreement"]
        for r in answered
        if r["candidate"]["reference_agreement"] is not None
    ]
    return {
        side: {
            "tokens": int(total(side, "tokens")),
            "estimated_cost_usd": total(side, "estimated_cost_usd"),
            "latency_s": total(side, "latency_s"),
            "references": int(total(side, "references")),
            "dimensions": int(total(side, "dimensions")),
            "description_chars": int(total(side, "description_chars")),
        }
        for side in ("stored", "candidate")
    } | {
        "pointers": len(results),
        "answered": len(answered),
        "mean_reference_agreement": round(sum(agreements) / len(agreements), 3) if agreements else None,
    }


class CompareRefused(Exception):
    pass


def run(args: argparse.Namespace, load: Load, with_connection: WithConnection) -> int:
    if not args.model.strip():
        print("pgqueue-enricher: --model must name a Gemini model", file=sys.stderr)
        return 2
    settings = load(args)
    if settings.enricher_provider != "gemini" or settings.gemini_api_key is None:
        print(
            "pgqueue-enricher: compare needs GEMINI_API_KEY (and ENRICHER_PROVIDER=gemini)", file=sys.stderr
        )
        return 2

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        return await compare(conn, settings, args)

    try:
        report = asyncio.run(with_connection(settings, work))
    except CompareRefused as refused:
        print(f"pgqueue-enricher: {refused}", file=sys.stderr)
        return 1
    if args.output is not None:
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(report))
        return 0
    _print(report)
    return 0


def _side(figures: dict[str, Any]) -> str:
    if "error" in figures:
        return f"failed: {figures['error']}"
    cost = figures.get("estimated_cost_usd")
    latency = figures.get("latency_s")
    return (
        f"{figures['tokens']:>6} tok  ${cost or 0:.5f}  {latency or 0:>6.2f} s  "
        f"{len(figures['sections'])}/{len(SECTION_HEADINGS)} sections  {figures['references']} refs  "
        f"{figures['dimensions']} dims  {figures['description_chars']} chars  "
        f"({figures.get('model_version') or 'unstamped'})"
    )


def _print(report: dict[str, Any]) -> None:
    print(f"compare: {report['model']} on {len(report['pointers'])} pointers (seed {report['seed']})")
    for entry in report["pointers"]:
        print(f"{entry['pointer_id']}  {entry['title']}")
        print(f"  stored     {_side(entry['stored'])}")
        agreement_note = entry["candidate"].get("reference_agreement")
        suffix = "" if agreement_note is None else f"  references agree {agreement_note:.0%}"
        print(f"  candidate  {_side(entry['candidate'])}{suffix}")
    total = report["total"]
    for side in ("stored", "candidate"):
        t = total[side]
        print(
            f"total {side:<9} {t['tokens']} tokens, ${t['estimated_cost_usd']:.4f}, {t['latency_s']:.1f} s, "
            f"{t['references']} references, {t['dimensions']} dimensions, {t['description_chars']} chars"
        )
    mean = total["mean_reference_agreement"]
    print(
        f"answered {total['answered']}/{total['pointers']}; mean reference agreement "
        f"{'-' if mean is None else f'{mean:.0%}'}"
    )
