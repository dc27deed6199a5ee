"""The offline embedder: words and character grams hashed into voyage-3's 1024 dimensions."""

from __future__ import annotations

import hashlib
import math
import re
from functools import lru_cache
from typing import TYPE_CHECKING

from pgqueue_enricher.errors import PermanentFailure
from pgqueue_enricher.providers.types import EMBEDDING_DIMENSIONS, Embedding

if TYPE_CHECKING:
    from pgqueue_enricher.settings import Settings

_WORD = re.compile(r"[a-z0-9]+(?:[/.'\-][a-z0-9]+)*")
_UNIGRAM_WEIGHT = 1.0
_BIGRAM_WEIGHT = 0.7
_CHARGRAM_WEIGHT = 0.25


@lru_cache(maxsize=65536)
def _slot(feature: str) -> tuple[int, float]:
    """Stable across processes and machines (unlike `hash()`, which is salted per process):
    the vectors are stored, so the same text must land on the same vector forever."""
    digest = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "big")
    return digest % EMBEDDING_DIMENSIONS, (1.0 if digest >> 63 else -1.0)


@lru_cache(maxsize=16384)
def _word_features(word: str) -> tuple[tuple[int, float], ...]:
    padded = f"<{word}>"
    slots = [_slot(f"w:{word}")]
    weights = [_UNIGRAM_WEIGHT]
    grams = [padded[i : i + n] for n in (3, 4, 5) for i in range(len(padded) - n + 1)]
    share = _CHARGRAM_WEIGHT / math.sqrt(max(len(grams), 1))
    for gram in grams:
        slots.append(_slot(f"c:{gram}"))
        weights.append(share)
    return tuple((index, sign * weight) for (index, sign), weight in zip(slots, weights, strict=True))


def lexical_vector(text: str) -> list[float]:
    """Signed feature hashing of word unigrams, bigrams and character 3-5-grams, L2-normalised.
    Character grams let `GWB` meet `GWB,` and `A501` meet `A-501`; bigrams reward phrases."""
    words = _WORD.findall(text.lower())
    vector = [0.0] * EMBEDDING_DIMENSIONS
    if not words:
        index, sign = _slot("empty:")
        vector[index] = sign
        return vector
    for word in words:
        for index, value in _word_features(word):
            vector[index] += value
    for first, second in zip(words, words[1:], strict=False):
        index, sign = _slot(f"b:{first} {second}")
        vector[index] += sign * _BIGRAM_WEIGHT
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        index, sign = _slot("empty:")
        vector[index] = sign
        return vector
    return [v / norm for v in vector]


class LexicalEmbedder:
    """Embedder for ENRICHER_PROVIDER=local: deterministic, offline, 1024 dims like voyage-3,
    so the `vector(1024)` column and the search SQL need no change. It matches words, not
    meaning; good enough for the demo and tests, not a substitute for Voyage."""

    name = "lexical-hash-1024"
    model = name

    def __init__(self, settings: Settings | None = None) -> None:
        """Takes the settings like every provider, and needs none of them."""

    async def open(self) -> None:
        """Nothing to load or check: hashing needs no model, no key and no optional extra."""

    async def embed(self, text: str) -> Embedding:
        vector = lexical_vector(text)
        return Embedding(vector=vector, model=self.name, total_tokens=len(text.split()), kind="lexical")

    async def embed_as(self, text: str, model: str, dimensions: int | None) -> Embedding:
        """Only its own model: an embedding switch needs Voyage (ENRICHER_PROVIDER=gemini)."""
        if model != self.name or dimensions not in (None, EMBEDDING_DIMENSIONS):
            raise PermanentFailure(
                "config",
                f"the local provider embeds only with {self.name}, not {model!r}: "
                "an embedding switch needs ENRICHER_PROVIDER=gemini (Voyage)",
            )
        return await self.embed(text)

    async def aclose(self) -> None:
        """Nothing to release."""
