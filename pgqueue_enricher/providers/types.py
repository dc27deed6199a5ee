"""The shapes that flow between the queue and the providers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pgqueue_enricher.errors import EnrichmentFailure

EMBEDDING_DIMENSIONS = 1024


@dataclass(frozen=True)
class EnrichmentInput:
    pointer_id: str
    cropped_image_bytes: bytes
    sheet_reflection: str | None
    page_name: str
    discipline_name: str
    pointer_title: str
    # The host's re-ground code says why it added the region (enrichment_metadata key
    # "reground_instruction"); the prompt carries it as context.
    reground_instruction: str | None = None
    lane: str = "interactive"  # the queue lane: decides Gemini's service tier (providers/tiers.py)

    def prompt_text(self) -> str:
        """The text parts of the prompt, for the gate's token estimate before the call."""
        return "".join(
            (self.sheet_reflection or "", self.page_name, self.discipline_name, self.pointer_title)
        )


@dataclass(frozen=True)
class EnrichmentOutput:
    """The model's answer, read: markdown description, normalised cross-references, and the
    text to embed. `metadata` carries usage, model version, finish reason, code executions
    and latency; it goes into `enrichment_metadata` as is (JSON-serialisable values only)."""

    rich_description: str
    cross_references: list[str]
    embedding_text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    # A provider-wide problem this answer revealed although it is usable (a substituted model):
    # the row keeps the answer, and the gate pauses the provider for the fleet.
    provider_problem: EnrichmentFailure | None = None


@dataclass(frozen=True)
class Embedding:
    vector: list[float]
    model: str
    total_tokens: int = 0
    kind: str = "voyage"


class CropStore(Protocol):
    """`open` runs once before the worker's first claim: a setting that cannot work raises
    ConfigError there (one sentence naming the fix), so no row is tried and failed for it.
    The same holds for Describer and Embedder."""

    async def open(self) -> None: ...
    async def fetch(self, png_path: str | None) -> bytes: ...
    async def aclose(self) -> None: ...


class Describer(Protocol):
    """Turns a crop plus its page context into markdown (Gemini, or the local OCR provider)."""

    name: str

    async def open(self) -> None: ...
    async def describe(self, item: EnrichmentInput) -> EnrichmentOutput: ...
    async def aclose(self) -> None: ...


class Embedder(Protocol):
    name: str

    async def open(self) -> None: ...
    async def embed(self, text: str) -> Embedding: ...
    async def embed_as(self, text: str, model: str, dimensions: int | None) -> Embedding: ...
    async def aclose(self) -> None: ...


def embedding_text(title: str, page_name: str, discipline: str, description: str) -> str:
    """What gets embedded: title, page and discipline first so search hits carry context."""
    return f"{title}\nPage: {page_name}\nDiscipline: {discipline}\n\n{description}".strip()
