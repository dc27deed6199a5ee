"""The prompt asks for everything the host's own Pass 2 prompt asked for, and carries its context.

Replacing Maestro's in-process worker must not lose what its users already got: the visual
content, materials shown by hatching or symbols, leader lines, section-cut and tag
references, and anything that looks wrong (what the host's own Pass 2 prompt asks for).
"""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from pgqueue_enricher.providers.answer import read_answer
from pgqueue_enricher.providers.gemini import GeminiDescriber
from pgqueue_enricher.providers.prompt import PROMPT_VERSION, SYSTEM_INSTRUCTION, build_contents
from pgqueue_enricher.providers.types import EnrichmentInput
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer, tiny_png

ITEM = EnrichmentInput("p-1", tiny_png(), "Wall sections.", "A-501", "Architectural", "Parapet")
INSTRUCTION = "Pass 1 missed the flashing detail at the parapet; capture its callouts."


@pytest.mark.parametrize(
    "ask",
    [
        "what the region depicts",
        "materials indicated by hatching or symbols",
        "leader line",
        "section-cut symbols",
        "tag references",
        "incorrect or unusual",
    ],
)
def test_the_system_instruction_asks_for_what_the_hosts_prompt_asked_for(ask: str) -> None:
    assert ask in " ".join(SYSTEM_INSTRUCTION.split())


def test_the_prompt_version_changed_with_the_instruction() -> None:
    # Stored checkpoints of the previous prompt must not be reused (see ClaimedPointer.checkpoint).
    assert PROMPT_VERSION != "pass2-2026-11-25.1"


def test_the_answer_parser_keeps_the_new_kinds_of_content() -> None:
    answer = (
        "## Description\nA parapet wall section; diagonal hatching indicates concrete, and the "
        "leader line from note 3 points to the cap flashing.\n\n"
        '## Extracted Content\n- 5/8" gypsum board\n\n'
        "## Cross-References\n- Section 3/A-501\n- Detail 4/A-601\n- W3\n\n"
        "## Notes\nThe 4'-6\" dimension conflicts with the 4'-8\" on A-601: looks incorrect.\n"
    )
    body: dict[str, Any] = {
        "modelVersion": "gemini-3-flash-preview",
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": answer}]}, "finishReason": "STOP", "index": 0}
        ],
    }
    output = read_answer(types.GenerateContentResponse.model_validate(body), ITEM)
    assert "hatching indicates concrete" in output.rich_description
    assert "leader line from note 3" in output.rich_description
    assert "looks incorrect" in output.rich_description
    assert "Detail 4/A-601" in output.cross_references


def test_without_an_instruction_the_turn_is_context_image_title() -> None:
    (turn,) = build_contents(ITEM, "image/png")
    assert [("image" if part.inline_data else "text") for part in turn.parts or []] == [
        "text",
        "image",
        "text",
    ]


async def test_a_reground_instruction_reaches_gemini_after_the_page_context_and_before_the_image(
    fake_server: FakeServer, provider_settings: Settings
) -> None:
    describer = GeminiDescriber(provider_settings)
    try:
        await describer.describe(
            EnrichmentInput(
                "p-2", tiny_png(), "Wall sections.", "A-501", "Architectural", "Parapet", INSTRUCTION
            )
        )
    finally:
        await describer.aclose()
    request = fake_server.gemini.last
    assert request.parts == ["text", "text", "image", "text"]
    context, instruction, title = request.texts
    assert context.startswith("Page: A-501")
    assert INSTRUCTION in instruction and INSTRUCTION not in context
    assert title == "Pointer title: Parapet"
