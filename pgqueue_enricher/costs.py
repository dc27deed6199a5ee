"""The cost ledger: what a Gemini call is estimated to cost, and `status --costs`.

Estimates, not invoices: they come from the token counts Gemini reports and the price
settings (PASS2_PRICE_*, USD per million tokens, defaults from Google's paid-tier list for
gemini-3-flash-preview), so a price change is a setting, not a release. Only numbers and
tier names are ever stored or printed here: nothing in a cost can carry a secret.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pgqueue_enricher.settings import Settings

PER_MILLION = 1_000_000
_SINCE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>s|m|h|d)?\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
TOKEN_KINDS = ("prompt_tokens", "cached_tokens", "output_tokens", "thoughts_tokens", "tool_use_prompt_tokens")


@dataclass(frozen=True)
class Prices:
    """USD per million tokens at the standard tier; Flex pays `flex_factor` of each."""

    input: float = 0.50
    output: float = 3.00
    cached_input: float = 0.05
    flex_factor: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> Prices:
        return cls(
            input=settings.pass2_price_input,
            output=settings.pass2_price_output,
            cached_input=settings.pass2_price_cached_input,
            flex_factor=settings.pass2_flex_price_factor,
        )


def estimate_cost_usd(usage: dict[str, Any], tier: str, prices: Prices) -> float:
    """One call's estimated cost. Gemini's prompt count includes the cached tokens (billed at
    the cached price) and the code-execution tool's input counts as input; thinking is
    billed as output."""

    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and value > 0 else 0

    cached = min(count("cached_tokens"), count("prompt_tokens"))
    fresh_input = count("prompt_tokens") - cached + count("tool_use_prompt_tokens")
    output = count("output_tokens") + count("thoughts_tokens")
    dollars = (
        fresh_input * prices.input + cached * prices.cached_input + output * prices.output
    ) / PER_MILLION
    if tier == "flex":
        dollars *= prices.flex_factor
    return round(dollars, 8)


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
