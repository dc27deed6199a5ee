"""Turning a Gemini response into what gets stored for a pointer.

With code execution the model writes text before and between its tool calls ("let me zoom
in on the dimension string") and `response.text` joins all of it; only the text after the
last execution result is the answer. Everything here is defensive about shape: a response
with no candidates, a blocked prompt or a 2 MB answer must become a clear failure or a
bounded description, never an exception from deep inside the SDK's types.
"""

from __future__ import annotations

import re
from typing import Any

from google.genai import types

from pgqueue_enricher.errors import PermanentFailure, TransientFailure
from pgqueue_enricher.providers.prompt import PROMPT_VERSION
from pgqueue_enricher.providers.references import find_references, normalise_references
from pgqueue_enricher.providers.types import EnrichmentInput, EnrichmentOutput, embedding_text

# A description is read by people and embedded; 200 KB is far beyond any honest answer for
# one crop, and bounds the row size when a model loops.
MAX_DESCRIPTION_BYTES = 200_000

SAFETY_FINISH_REASONS = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"}
)

_HEADING = re.compile(
    r"^[ \t]*#{1,6}[ \t]*(description|extracted content|table contents|cross[- ]references|notes)\b",
    re.IGNORECASE | re.MULTILINE,
)
_CROSS_REF_SECTION = re.compile(
    r"^[ \t]*#{1,6}[ \t]*cross[- ]references[^\n]*\n(?P<body>.*?)(?=^[ \t]*#{1,6}[ \t]|\Z)",
    re.IGNORECASE | re.MULTILINE | re.DOTALL,
)
_BULLET_LINE = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,3}[.)])\s+(?P<item>.+)$")

_USAGE_FIELDS = {
    "prompt_tokens": "prompt_token_count",
    "output_tokens": "candidates_token_count",
    "thoughts_tokens": "thoughts_token_count",
    "cached_tokens": "cached_content_token_count",
    "tool_use_prompt_tokens": "tool_use_prompt_token_count",
    "total_tokens": "total_token_count",
}


def _parts(response: types.GenerateContentResponse) -> list[types.Part]:
    candidates = response.candidates or []
    if not candidates or candidates[0].content is None:
        return []
    return list(candidates[0].content.parts or [])


def _answer_texts(parts: list[types.Part]) -> list[str]:
    return [part.text for part in parts if part.text and not part.thought]


def final_answer(response: types.GenerateContentResponse) -> str:
    """The non-thought text after the last code execution result (all of it without code execution)."""
    parts = _parts(response)
    last_result = -1
    for index, part in enumerate(parts):
        if part.code_execution_result is not None:
            last_result = index
    return "".join(_answer_texts(parts[last_result + 1 :]))


def _enum_name(value: object) -> str | None:
    if value is None:
        return None
    name = getattr(value, "name", None)
    return str(name if name is not None else value)


def _from_first_heading(text: str) -> str | None:
    """The text from the first section heading on, or None when there is no section at all."""
    match = _HEADING.search(text)
    return text[match.start() :].strip() if match else None


def _bounded(text: str) -> tuple[str, bool]:
    raw = text.encode("utf-8")
    if len(raw) <= MAX_DESCRIPTION_BYTES:
        return text, False
    kept = raw[:MAX_DESCRIPTION_BYTES].decode("utf-8", errors="ignore")
    cut = kept.rfind("\n")
    if cut > MAX_DESCRIPTION_BYTES // 2:
        kept = kept[:cut]
    note = (
        f"\n\n[answer truncated by pgqueue-enricher: the model returned {len(raw):,} bytes, "
        f"the first {len(kept.encode('utf-8')):,} are kept]"
    )
    return kept + note, True


def cross_reference_bullets(markdown: str) -> list[str]:
    """The bullet items of the `## Cross-References` section, as written.

    Unbulleted lines ("None", "The sheet refers to:") are not items; references inside them
    are still found by `find_references` over the whole answer.
    """
    items: list[str] = []
    for section in _CROSS_REF_SECTION.finditer(markdown):
        for line in section["body"].splitlines():
            bullet = _BULLET_LINE.match(line)
            if bullet:
                items.append(bullet["item"])
    return items


def cross_references(markdown: str) -> list[str]:
    """The section's references first, then any the model mentioned elsewhere but did not list.

    A bullet such as "S-101 (foundation plan)" is reduced to the references it contains,
    so the same sheet is not stored once bare and once annotated; a bullet with no
    recognisable reference is kept as written.
    """
    collected: list[str] = []
    for bullet in cross_reference_bullets(markdown):
        found = find_references(bullet)
        collected.extend(found or [bullet])
    collected.extend(find_references(markdown))
    return normalise_references(collected)


def usage(response: types.GenerateContentResponse) -> dict[str, int]:
    meta = response.usage_metadata
    return {key: int(getattr(meta, field, None) or 0) for key, field in _USAGE_FIELDS.items()}


def _check_blocked(response: types.GenerateContentResponse, finish_reason: str | None) -> None:
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = _enum_name(feedback.block_reason)
        detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
        raise PermanentFailure(
            "safety",
            f"Gemini blocked the prompt (block reason {reason}){detail}; it will not be retried "
            "automatically (requeue the pointer if the crop is legitimate)",
        )
    if finish_reason in SAFETY_FINISH_REASONS:
        raise PermanentFailure(
            "safety",
            f"Gemini stopped the answer for safety (finish reason {finish_reason}); it will not be "
            "retried automatically (requeue the pointer if the crop is legitimate)",
        )


def read_answer(response: types.GenerateContentResponse, item: EnrichmentInput) -> EnrichmentOutput:
    """The stored result of one response, or the failure the queue should record."""
    candidates = response.candidates or []
    finish_reason = _enum_name(candidates[0].finish_reason) if candidates else None
    _check_blocked(response, finish_reason)

    parts = _parts(response)
    answer = _from_first_heading(final_answer(response))
    if answer is None:
        # The model sometimes writes its answer before a last look with code execution.
        answer = _from_first_heading("".join(_answer_texts(parts)))
    if not answer:
        raise TransientFailure(
            "empty_answer",
            f"Gemini returned no usable answer (finish reason {finish_reason or 'none'}; "
            "no text with the expected ## sections); the attempt counts as failed",
        )

    description, truncated = _bounded(answer)
    metadata: dict[str, Any] = {
        "model_version": response.model_version,
        "finish_reason": finish_reason,
        "code_executions": sum(1 for part in parts if part.executable_code is not None),
        "usage": usage(response),
        "prompt_version": PROMPT_VERSION,
    }
    if finish_reason == "MAX_TOKENS":
        metadata["max_tokens_reached"] = True
    if truncated:
        metadata["description_truncated"] = True
        metadata["answer_bytes"] = len(answer.encode("utf-8"))

    return EnrichmentOutput(
        rich_description=description,
        cross_references=cross_references(description),
        embedding_text=embedding_text(item.pointer_title, item.page_name, item.discipline_name, description),
        metadata=metadata,
    )
