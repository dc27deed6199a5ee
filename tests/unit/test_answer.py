"""Reading Gemini's answer: what becomes the description, the references and the metadata.

Responses are real `GenerateContentResponse` objects, either parsed from the wire JSON the
fake server sends or received from it through the SDK.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from pgqueue_enricher.errors import PermanentFailure, TransientFailure
from pgqueue_enricher.providers.answer import MAX_DESCRIPTION_BYTES, final_answer, read_answer
from pgqueue_enricher.providers.gemini import GeminiDescriber
from pgqueue_enricher.providers.prompt import PROMPT_VERSION
from pgqueue_enricher.providers.types import EnrichmentInput
from tests.fakes.server import FakeServer, Fault, realistic_answer, tiny_png

TITLE = "Parapet Wall Section"
ITEM = EnrichmentInput("p-1", tiny_png(), "East elevation wall sections.", "A-501", "Architectural", TITLE)
ANSWER = "## Description\nA door.\n\n## Cross-References\n- A-601\n\n## Notes\nNone\n"


def response(
    parts: list[dict[str, Any]], finish: str | None = "STOP", **extra: Any
) -> types.GenerateContentResponse:
    body: dict[str, Any] = {"modelVersion": "gemini-3-flash-preview", **extra}
    if parts or finish:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        body["candidates"] = [candidate]
    return types.GenerateContentResponse.model_validate(body)


def code(n: int) -> list[dict[str, Any]]:
    return [
        {"executableCode": {"language": "PYTHON", "code": f"print({n})"}},
        {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": str(n)}},
    ]


def test_final_answer_is_the_text_after_the_last_code_execution_without_thoughts() -> None:
    parts = [
        {"text": "Let me zoom in on the dimension string."},
        *code(1),
        {"text": "Now the schedule."},
        *code(2),
        {"text": "Hmm, 4'-6\" it is.", "thought": True},
        {"text": "## Description\n"},
        {"text": "A door."},
    ]
    assert final_answer(response(parts)) == "## Description\nA door."


def test_final_answer_without_code_execution_is_all_non_thought_text() -> None:
    parts = [{"text": "thinking", "thought": True}, {"text": "## Description\n"}, {"text": "A door."}]
    assert final_answer(response(parts)) == "## Description\nA door."


def test_final_answer_of_a_response_without_candidates_is_empty() -> None:
    assert final_answer(response([], finish=None)) == ""


async def test_realistic_answer_keeps_the_table_and_drops_the_preamble_and_thoughts(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    output = await describer.describe(ITEM)
    description = output.rich_description
    assert description.startswith("## Description\nParapet Wall Section:")
    assert "Let me zoom in" not in description
    assert "The zoomed dimension reads" not in description  # the thought part
    assert "| Mark | Material | Thickness |" in description
    assert '| 1 | Gypsum board, Type X | 5/8" |' in description
    assert "4'-6\"" in description
    assert description == realistic_answer(TITLE).strip()


async def test_realistic_answer_cross_references_are_distinct_and_exact(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    output = await describer.describe(ITEM)
    assert output.cross_references == ["S-101", "Detail 4/A3.01", "09 21 16"]


async def test_usage_model_and_code_executions_land_in_metadata(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    metadata = (await describer.describe(ITEM)).metadata
    assert metadata["usage"] == {
        "prompt_tokens": 1830,
        "output_tokens": 412,
        "thoughts_tokens": 951,
        "cached_tokens": 1024,
        "tool_use_prompt_tokens": 388,
        "total_tokens": 3581,
    }
    assert metadata["model_version"] == "gemini-3-flash-preview"
    assert metadata["finish_reason"] == "STOP"
    assert metadata["code_executions"] == 1
    assert metadata["prompt_version"] == PROMPT_VERSION
    assert isinstance(metadata["gemini_ms"], int)


async def test_embedding_text_starts_with_title_page_and_discipline(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    output = await describer.describe(ITEM)
    assert output.embedding_text.startswith(
        f"{TITLE}\nPage: A-501\nDiscipline: Architectural\n\n## Description"
    )


def test_missing_usage_counts_are_zero() -> None:
    output = read_answer(response([{"text": ANSWER}]), ITEM)
    assert output.metadata["usage"] == dict.fromkeys(output.metadata["usage"], 0)
    assert len(output.metadata["usage"]) == 6


@pytest.mark.parametrize("reason", ["SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"])
def test_safety_finish_reasons_are_permanent(reason: str) -> None:
    with pytest.raises(PermanentFailure) as caught:
        read_answer(response([{"text": ANSWER}], finish=reason), ITEM)
    assert caught.value.kind == "safety"
    assert reason in caught.value.reason


def test_a_blocked_prompt_is_permanent() -> None:
    blocked = response([], finish=None, promptFeedback={"blockReason": "PROHIBITED_CONTENT"})
    with pytest.raises(PermanentFailure) as caught:
        read_answer(blocked, ITEM)
    assert caught.value.kind == "safety"
    assert "PROHIBITED_CONTENT" in caught.value.reason


@pytest.mark.parametrize(
    "parts",
    [
        [],
        [{"text": "   \n\t"}],
        [{"text": "## Description\nonly a thought", "thought": True}],
        [{"text": "I could not read this crop."}],  # no sections
        [*code(1)],
    ],
    ids=["no-parts", "whitespace", "only-thoughts", "sectionless", "only-code"],
)
def test_empty_or_sectionless_answers_are_transient(parts: list[dict[str, Any]]) -> None:
    with pytest.raises(TransientFailure) as caught:
        read_answer(response(parts), ITEM)
    assert caught.value.kind == "empty_answer"


def test_an_answer_written_before_a_last_code_execution_is_still_used() -> None:
    parts = [{"text": ANSWER}, *code(1)]
    assert read_answer(response(parts), ITEM).rich_description == ANSWER.strip()


def test_text_before_the_first_section_is_not_part_of_the_description() -> None:
    output = read_answer(response([{"text": "Here is my analysis:\n\n" + ANSWER}]), ITEM)
    assert output.rich_description.startswith("## Description")


def test_max_tokens_with_usable_text_is_kept_and_noted() -> None:
    output = read_answer(response([{"text": ANSWER}], finish="MAX_TOKENS"), ITEM)
    assert output.rich_description == ANSWER.strip()
    assert output.metadata["finish_reason"] == "MAX_TOKENS"
    assert output.metadata["max_tokens_reached"] is True


async def test_a_huge_answer_is_stored_bounded_with_a_note(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    fake_server.gemini.script(["huge"])
    output = await describer.describe(ITEM)
    size = len(output.rich_description.encode("utf-8"))
    assert MAX_DESCRIPTION_BYTES // 2 < size <= MAX_DESCRIPTION_BYTES + 200
    assert "[answer truncated by pgqueue-enricher" in output.rich_description
    assert output.metadata["description_truncated"] is True
    assert output.metadata["answer_bytes"] > 2_000_000


def test_annotated_bullets_are_reduced_to_their_references() -> None:
    text = (
        "## Description\nWall.\n## Cross-References\n"
        "- S-101 (foundation plan)\n- **Detail 4/A3.01** - parapet flashing\n- Structural general notes\n"
        "- None\n## Notes\nSee also A-601.\n"
    )
    output = read_answer(response([{"text": text}]), ITEM)
    assert output.cross_references == ["S-101", "Detail 4/A3.01", "Structural general notes", "A-601"]


def test_a_none_cross_reference_section_gives_no_references() -> None:
    text = "## Description\nA blank area.\n## Cross-References\nNone\n## Notes\nNone\n"
    assert read_answer(response([{"text": text}]), ITEM).cross_references == []


async def test_a_custom_answer_from_the_fake_is_read_the_same_way(
    fake_server: FakeServer, describer: GeminiDescriber
) -> None:
    fake_server.gemini.script([Fault("answer", text=ANSWER)])
    output = await describer.describe(ITEM)
    assert output.rich_description == ANSWER.strip()
    assert output.cross_references == ["A-601"]
    assert output.metadata["code_executions"] == 0
