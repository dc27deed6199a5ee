"""What a Gemini call is estimated to cost, from its token counts and the price settings.

Estimates, not invoices: they come from the token counts Gemini reports and the price
settings (PASS2_PRICE_*, USD per million tokens, defaults from Google's paid-tier list for
gemini-3-flash-preview), so a price change is a setting, not a release. Only numbers and
tier names are ever stored or printed here: nothing in a cost can carry a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgqueue_enricher.settings import Settings

PER_MILLION = 1_000_000


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
