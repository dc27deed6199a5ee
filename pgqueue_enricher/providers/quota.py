"""Reading a Gemini quota refusal: which budget ran out, and how big the provider says it is.

A 429 body may carry a `google.rpc.QuotaFailure` whose violations name the budget by
`quotaId` (`...PerMinute...`, `...PerDay...`, `...InputTokens...PerMinute...`) and its size
by `quotaValue`. A body with no details at all (the Vertex style) is a per-minute refusal:
waiting for the gate's next slot is the right answer to it, pausing the fleet is not.

Some 429s are not throttling at all: a spend cap per rolling period, a depleted prepaid
balance, a tier change. They last until a person acts or the period resets, so they pause the
provider like a spent daily quota instead of sending every row back to wait for nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pgqueue_enricher.errors import EnrichmentFailure, TransientFailure

QUOTA_FAILURE = "google.rpc.QuotaFailure"

# (kind, what it means, what names it in the message or a quota id). Every ordinary quota body
# says "check your plan and billing details", so billing alone names nothing.
NOT_THROTTLING = (
    (
        "spend_cap",
        "a spend cap is reached",
        re.compile(r"spend(ing)?[\s_-]*(cap|limit)|SpendLimit|SpendCap", re.I),
    ),
    (
        "prepaid_balance",
        "the prepaid balance is depleted",
        re.compile(r"prepa(id|yment)|(credit|account) balance|insufficient (funds|balance|credit)", re.I),
    ),
    (
        "tier_change",
        "the project's usage tier changed",
        re.compile(r"tier (change|upgrade|downgrade)|(usage|billing) tier (has )?changed|TierChange", re.I),
    ),
)


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
    for kind, meaning, pattern in NOT_THROTTLING:
        if pattern.search(failure.reason) or any(pattern.search(quota_id) for quota_id in refusal.quota_ids):
            return TransientFailure(
                kind,
                f"{provider.capitalize()} refused because {meaning}; a person must act or the period "
                f"reset: {failure.reason}",
                retry_after=failure.retry_after,
                scope="systemic",
                provider=provider,
            )
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
