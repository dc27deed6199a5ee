"""GeminiDescriber through the real google-genai SDK against the fake server."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from pgqueue_enricher.errors import EnrichmentFailure, PermanentFailure, TransientFailure
from pgqueue_enricher.providers.gemini import GeminiDescriber
from pgqueue_enricher.providers.prompt import NO_REFLECTION, SYSTEM_INSTRUCTION
from pgqueue_enricher.providers.types import EnrichmentInput
from pgqueue_enricher.settings import Settings
from tests.fakes.pytest_plugin import FAKE_GEMINI_KEY
from tests.fakes.server import FakeServer, Fault, tiny_png
from tests.support.helpers import raised_failure

CROP = tiny_png(12, 9)
REFLECTION = "Sheet A-501 shows the east elevation wall sections, parapet to footing."


def item(title: str = "Parapet Wall Section", reflection: str | None = REFLECTION) -> EnrichmentInput:
    return EnrichmentInput("p-1", CROP, reflection, "A-501 Wall Sections", "Architectural", title)


# -- the request ---------------------------------------------------------------------------


async def test_request_carries_the_crop_bytes_exactly(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    assert b"\xfb\xff\xbf" in CROP  # bytes whose URL-safe base64 has '-' and '_'
    await describer.describe(item())
    request = fake_server.gemini.last
    assert request.image == CROP
    assert request.image_mime == "image/png"
    assert request.headers["x-goog-api-key"] == FAKE_GEMINI_KEY


async def test_page_context_comes_before_the_image_and_the_title_after_it(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    await describer.describe(item())
    request = fake_server.gemini.last
    assert request.parts == ["text", "image", "text"]
    context, title = request.texts
    assert "Page: A-501 Wall Sections" in context
    assert "Discipline: Architectural" in context
    assert REFLECTION in context
    assert "Parapet Wall Section" not in context
    assert title == "Pointer title: Parapet Wall Section"
    assert request.title == "Parapet Wall Section"


async def test_pointers_of_one_page_share_the_prefix_before_the_image(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    await describer.describe(item("Door Schedule"))
    await describer.describe(item("Window Schedule"))
    first, second = fake_server.gemini.requests
    assert first.camel["systemInstruction"] == second.camel["systemInstruction"]
    assert first.texts[0] == second.texts[0]
    assert first.texts[1] != second.texts[1]


async def test_missing_sheet_reflection_is_said_explicitly(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    await describer.describe(item(reflection=None))
    assert NO_REFLECTION in fake_server.gemini.last.texts[0]


async def test_config_has_code_execution_high_thinking_high_resolution_and_the_system_instruction(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    await describer.describe(item())
    body = fake_server.gemini.last.camel
    assert body["tools"] == [{"codeExecution": {}}]
    generation = body["generationConfig"]
    assert generation["thinkingConfig"]["thinkingLevel"] == "HIGH"
    assert "thinkingBudget" not in generation["thinkingConfig"]
    assert generation["mediaResolution"] == "MEDIA_RESOLUTION_HIGH"
    assert "temperature" not in generation
    assert body["systemInstruction"]["parts"][0]["text"] == SYSTEM_INSTRUCTION
    assert fake_server.gemini.last.path == "/v1/models/gemini-3-flash-preview:generateContent"


async def test_temperature_and_model_are_sent_only_when_configured(
    fake_server: FakeServer, provider_settings: Settings
) -> None:
    settings = provider_settings.model_copy(
        update={"pass2_temperature": 0.2, "pass2_model": "gemini-3.5-flash", "pass2_thinking_level": "low"}
    )
    provider = GeminiDescriber(settings)
    try:
        output = await provider.describe(item())
    finally:
        await provider.aclose()
    request = fake_server.gemini.last
    assert request.camel["generationConfig"]["temperature"] == 0.2
    assert request.camel["generationConfig"]["thinkingConfig"]["thinkingLevel"] == "LOW"
    assert request.path.endswith("/models/gemini-3.5-flash:generateContent")
    assert output.metadata["model_version"] == "gemini-3.5-flash"


async def test_latency_is_recorded_in_metadata(fake_server: FakeServer, describer: GeminiDescriber) -> None:
    fake_server.gemini.latency = 0.2
    output = await describer.describe(item())
    assert output.metadata["gemini_ms"] >= 200


async def test_concurrent_calls_share_one_client_and_run_in_parallel(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    gate = fake_server.gemini.hold()
    calls = [asyncio.create_task(describer.describe(item(f"Detail {n}"))) for n in range(3)]
    await gate.arrivals(3)  # all three are in flight at once
    assert not any(call.done() for call in calls)
    gate.release()
    outputs = await asyncio.gather(*calls)
    assert [o.rich_description.split("\n")[1].split(":")[0] for o in outputs] == [
        "Detail 0",
        "Detail 1",
        "Detail 2",
    ]
    assert fake_server.gemini.stats()["by_title"] == {"Detail 0": 1, "Detail 1": 1, "Detail 2": 1}
    assert fake_server.gemini.max_in_flight == 3
    assert fake_server.gemini.in_flight == 0


# -- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(("delay", "seconds"), [("30s", 30.0), ("1.5s", 1.5)])
async def test_429_with_retry_info_is_transient_with_the_retry_delay(
    fake_server: FakeServer, describer: GeminiDescriber, delay: str, seconds: float
) -> None:
    fake_server.gemini.script([Fault("429_retry_info", retry_delay=delay)])
    failure = await raised_failure(describer.describe(item()))
    assert isinstance(failure, TransientFailure)
    assert failure.kind == "rate_limited"
    assert failure.retry_after == seconds
    assert "quota" in failure.reason


async def test_an_invalid_key_is_permanent_and_never_printed(
    fake_server: FakeServer, provider_settings: Settings
) -> None:
    wrong = "wrong-gemini-key-0000-1111"
    provider = GeminiDescriber(provider_settings.model_copy(update={"gemini_api_key": SecretStr(wrong)}))
    try:
        failure = await raised_failure(provider.describe(item()))
    finally:
        await provider.aclose()
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "auth"
    assert failure.reason.startswith("Gemini refused the API key (400 INVALID_ARGUMENT)")
    assert wrong not in failure.reason
    assert "***" not in failure.reason  # nothing needed scrubbing: the key was never put in


async def test_a_safety_stop_is_permanent(fake_server: FakeServer, describer: GeminiDescriber) -> None:
    fake_server.gemini.script(["safety"])
    failure = await raised_failure(describer.describe(item()))
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "safety"


async def test_a_blocked_prompt_is_permanent(fake_server: FakeServer, describer: GeminiDescriber) -> None:
    fake_server.gemini.script(["prompt_blocked"])
    failure = await raised_failure(describer.describe(item()))
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "safety"


async def test_an_empty_answer_is_transient(fake_server: FakeServer, describer: GeminiDescriber) -> None:
    fake_server.gemini.script(["empty"])
    failure = await raised_failure(describer.describe(item()))
    assert isinstance(failure, TransientFailure)
    assert failure.kind == "empty_answer"


async def test_the_describer_recovers_after_failures(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    fake_server.gemini.script(["drop", "503", "ok"])
    for _ in range(2):
        await raised_failure(describer.describe(item()))
    assert (await describer.describe(item())).cross_references
    assert fake_server.gemini.stats()["outcomes"] == {"drop": 1, "503": 1, "ok": 1}


async def test_rates_inject_faults_reproducibly(fake_server: FakeServer, describer: GeminiDescriber) -> None:
    async def outcomes() -> list[str]:
        result = []
        for n in range(20):
            try:
                await describer.describe(item(f"Detail {n}"))
                result.append("ok")
            except EnrichmentFailure as failure:
                result.append(failure.kind)
        return result

    fake_server.gemini.rates(rate_429=0.3, rate_500=0.2, retry_delay="2s", seed=11)
    first = await outcomes()
    fake_server.gemini.rates(rate_429=0.3, rate_500=0.2, retry_delay="2s", seed=11)
    assert await outcomes() == first
    assert {"ok", "rate_limited", "gemini_unavailable"} <= set(first)
