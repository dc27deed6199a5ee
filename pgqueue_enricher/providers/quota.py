"""Reading a Gemini quota refusal: which budget ran out, and how big the provider says it is.

A 429 body may carry a `google.rpc.QuotaFailure` whose violations name the budget by
`quotaId` (`...PerMinute...`, `...PerDay...`, `...InputTokens...PerMinute...`) and its size
by `quotaValue`. A body with no details at all (the Vertex style) is a per-minute refusal:
waiting for the gate's next slot is the right answer to it, pausing the fleet is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgqueue_enricher.errors import EnrichmentFailure, TransientFailure

QUOTA_FAILURE = "google.rpc.QuotaFailure"


@dataclass(frozen=True)
class QuotaRefusal:
    daily: bool  # a per-day budget is spent: nothing will pass before it resets
    requests_per_minute: float | None  # the per-minute request quota the body named, if any
    quota_ids: tuple[str, ...]


def read_quota_refusal(details: list[dict[str, Any]]) -> QuotaRefusal:
    ids: list[str] = []
    requests_per_minute: float | None = None
    for detail in details:
        if not str(detail.get("@type", "")).endswith(QUOTA_FAILURE):
            continue
        for violation in detail.get("violations") or []:
            if not isinstance(violation, dict):
                continue
            quota_id = str(violation.get("quotaId") or "")
            ids.append(quota_id)
            if "PerMinute" in quota_id and "Token" not in quota_id:
                try:
                    value = float(violation.get("quotaValue"))
                except (TypeError, ValueError):
                    continue
                if value > 0:
                    requests_per_minute = value
    return QuotaRefusal(
        daily=any("PerDay" in quota_id for quota_id in ids),
        requests_per_minute=requests_per_minute,
        quota_ids=tuple(ids),
    )


def admission_scope(
    failure: EnrichmentFailure, provider: str, details: list[dict[str, Any]] | None = None
) -> EnrichmentFailure:
    """A transient-status failure with its admission scope: a 429 is a wait (or, for a spent
    per-day budget, a pause until RetryInfo); a 5xx or 408 is an outage."""
    failure.provider = provider
    if failure.kind != "rate_limited":
        failure.scope = "outage"
        return failure
    refusal = read_quota_refusal(details or [])
    if refusal.daily:
        return TransientFailure(
            "daily_quota",
            f"{provider.capitalize()}'s daily quota is spent: {failure.reason}",
            retry_after=failure.retry_after,
            scope="systemic",
            provider=provider,
        )
    failure.scope = "wait"
    failure.quota_per_minute = refusal.requests_per_minute
    return failure
