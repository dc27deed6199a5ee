"""Builds the providers the settings ask for, once per worker, and opens and closes them together."""

from __future__ import annotations

from dataclasses import dataclass

from pgqueue_enricher.providers.storage import open_crop_store
from pgqueue_enricher.providers.types import CropStore, Describer, Embedder
from pgqueue_enricher.settings import Settings


@dataclass
class Providers:
    store: CropStore
    describer: Describer
    embedder: Embedder

    @property
    def prompt_version(self) -> str:
        return str(getattr(self.describer, "prompt_version", self.describer.name))

    async def open(self) -> None:
        """Before the first claim: the first provider that cannot work raises its ConfigError."""
        for provider in (self.store, self.describer, self.embedder):
            await provider.open()

    async def aclose(self) -> None:
        for provider in (self.store, self.describer, self.embedder):
            await provider.aclose()


def build_providers(settings: Settings) -> Providers:
    store = open_crop_store(settings)
    if settings.enricher_provider == "local":
        # Imports nothing of the `local` extra: LocalDescriber.open() checks it, with the fix.
        from pgqueue_enricher.providers.local import LexicalEmbedder, LocalDescriber

        return Providers(store, LocalDescriber(settings), LexicalEmbedder(settings))
    from pgqueue_enricher.providers.gemini import GeminiDescriber
    from pgqueue_enricher.providers.voyage import VoyageEmbedder

    return Providers(store, GeminiDescriber(settings), VoyageEmbedder(settings))
