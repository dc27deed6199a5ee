"""Provider failures tell the queue whose fault they are: the row's, a wait, an outage, or the
whole provider's (real SDKs against the fake's quota and outage modes)."""

from __future__ import annotations

import pytest

from pgqueue_enricher.errors import TransientFailure
from pgqueue_enricher.providers.gemini import GeminiDescriber
from pgqueue_enricher.providers.quota import admission_scope
from pgqueue_enricher.providers.types import EnrichmentInput
from pgqueue_enricher.providers.voyage import VoyageEmbedder
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer, tiny_png
from tests.support.helpers import raised_failure

ITEM = EnrichmentInput("p-1", tiny_png(), "Wall sections.", "A-501", "Architectural", "Parapet")


async def test_a_per_minute_quota_refusal_is_a_wait_naming_the_quota_and_its_delay(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    fake_server.gemini.quota(1, 60.0)
    await describer.describe(ITEM)
    failure = await raised_failure(describer.describe(ITEM))
    assert (failure.scope, failure.kind, failure.provider) == ("wait", "rate_limited", "gemini")
    assert failure.gives_attempt_back
    assert failure.quota_per_minute == 1.0
    assert failure.retry_after is not None and 59 < failure.retry_after <= 60


async def test_a_quota_refusal_without_details_is_still_a_per_minute_wait(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    fake_server.gemini.quota(0, 1.0, vertex=True)
    failure = await raised_failure(describer.describe(ITEM))
    assert (failure.scope, failure.kind) == ("wait", "rate_limited")
    assert failure.retry_after is None and failure.quota_per_minute is None


async def test_a_spent_daily_quota_pauses_the_provider_until_retry_info(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    fake_server.gemini.daily_quota(reset_in=3600)
    failure = await raised_failure(describer.describe(ITEM))
    assert (failure.scope, failure.kind, failure.provider) == ("systemic", "daily_quota", "gemini")
    assert failure.gives_attempt_back
    assert failure.retry_after is not None and 3590 < failure.retry_after <= 3600
    assert "daily quota" in failure.reason


@pytest.mark.parametrize(
    ("mode", "kind", "words"),
    [("key_revoked", "auth", "GEMINI_API_KEY"), ("model_gone", "config", "PASS2_MODEL")],
)
async def test_a_refused_key_or_an_unknown_model_is_systemic(
    fake_server: FakeServer, describer: GeminiDescriber, mode: str, kind: str, words: str
) -> None:
    fake_server.gemini.outage(mode)
    failure = await raised_failure(describer.describe(ITEM))
    assert (failure.scope, failure.kind, failure.provider) == ("systemic", kind, "gemini")
    assert words in failure.reason


@pytest.mark.parametrize(("mode", "kind"), [("down", "gemini_unavailable"), ("timeout", "timeout")])
async def test_gemini_down_or_silent_is_an_outage_that_spends_the_attempt(
    fake_server: FakeServer, describer: GeminiDescriber, mode: str, kind: str
) -> None:
    fake_server.gemini.outage(mode)
    fake_server.timeout_sleep, saved = 0.2, fake_server.timeout_sleep
    try:
        failure = await raised_failure(describer.describe(ITEM))
    finally:
        fake_server.timeout_sleep = saved
    assert (failure.scope, failure.kind) == ("outage", kind) or failure.kind == "connection"
    assert failure.scope == "outage" and not failure.gives_attempt_back


async def test_a_row_fault_stays_the_rows(fake_server: FakeServer, describer: GeminiDescriber) -> None:
    fake_server.gemini.script(["400"])
    failure = await raised_failure(describer.describe(ITEM))
    assert failure.scope == "row" and not failure.gives_attempt_back


async def test_voyage_refusing_its_key_is_systemic_and_its_429_a_wait(
    fake_server: FakeServer, provider_settings: Settings
) -> None:
    embedder = VoyageEmbedder(provider_settings)
    fake_server.voyage.script(["401", "429"])
    refused = await raised_failure(embedder.embed("text"))
    limited = await raised_failure(embedder.embed("text"))
    assert (refused.scope, refused.kind, refused.provider) == ("systemic", "auth", "voyage")
    assert (limited.scope, limited.provider) == ("wait", "voyage")


PER_MINUTE = "You exceeded your current quota, please check your plan and billing details."


def quota_details(quota_id: str) -> list[dict[str, object]]:
    return [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": quota_id}]}]


@pytest.mark.parametrize(
    ("message", "quota_id", "kind"),
    [
        ("Your project has reached its spend cap for the current period.", "", "spend_cap"),
        (PER_MINUTE, "GenerateContentSpendLimitPerTenMinutesPerProject", "spend_cap"),
        ("Your prepaid credit balance is depleted. Add credits to continue.", "", "prepaid_balance"),
        ("Insufficient funds on the billing account.", "", "prepaid_balance"),
        ("Your project's usage tier has changed; limits are being updated.", "", "tier_change"),
    ],
)
def test_a_429_that_is_not_throttling_pauses_the_provider_naming_why(
    message: str, quota_id: str, kind: str
) -> None:
    limited = TransientFailure(
        "rate_limited", f"Gemini rate limit or quota reached (429): {message}", retry_after=600
    )
    failure = admission_scope(limited, "gemini", quota_details(quota_id) if quota_id else [])
    assert (failure.scope, failure.kind, failure.provider) == ("systemic", kind, "gemini")
    assert failure.gives_attempt_back and failure.retry_after == 600
    assert "a person must act" in failure.reason


@pytest.mark.parametrize(
    ("message", "quota_id"),
    [
        (PER_MINUTE, "GenerateRequestsPerMinutePerProjectPerModel"),
        (PER_MINUTE, ""),
        ("Resource exhausted.", ""),
    ],
)
def test_a_plain_per_minute_refusal_stays_a_wait(message: str, quota_id: str) -> None:
    limited = TransientFailure("rate_limited", f"Gemini rate limit or quota reached (429): {message}")
    failure = admission_scope(limited, "gemini", quota_details(quota_id) if quota_id else [])
    assert (failure.scope, failure.kind) == ("wait", "rate_limited")
