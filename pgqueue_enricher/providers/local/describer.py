"""The offline describer (ENRICHER_PROVIDER=local): OCR, rules and markdown in place of Gemini.

The OCR half needs the optional `local` extra; it is imported when the describer opens (or,
for a caller that never opens it, on the first crop), never when this package is imported.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from typing import TYPE_CHECKING

from pgqueue_enricher.errors import PermanentFailure
from pgqueue_enricher.providers.local.analysis import analyse
from pgqueue_enricher.providers.local.markdown import OCR_ENGINE, render_markdown
from pgqueue_enricher.providers.types import EnrichmentInput, EnrichmentOutput, embedding_text
from pgqueue_enricher.settings import ConfigError

if TYPE_CHECKING:
    from types import ModuleType

    from pgqueue_enricher.providers.local.ocr import OcrPage
    from pgqueue_enricher.settings import Settings

PROMPT_VERSION = "local-1"
DEFAULT_MAX_PIXELS = 100_000_000
OCR_MODULE = "pgqueue_enricher.providers.local.ocr"


def import_ocr() -> ModuleType:
    """Import the OCR module, whose top-level imports are the `local` extra. Found through
    `sys.modules` on every call, so it costs nothing once the extra has loaded."""
    try:
        return importlib.import_module(OCR_MODULE)
    except ImportError as exc:
        if (exc.name or "").startswith("pgqueue_enricher"):
            raise  # our own bug, not a missing extra
        raise ConfigError(
            f"ENRICHER_PROVIDER=local needs the `local` extra ({exc.name or 'one of its modules'} "
            'cannot be imported): pip install "pgqueue-enricher[local]"'
        ) from exc


def _load_engine() -> None:
    import_ocr().load_engine()


def _read_crop(data: bytes, max_pixels: int) -> OcrPage:
    return import_ocr().read_crop(data, max_pixels)


# The local provider's own id for the `model_version` stamp: its OCR engine and rules.
LOCAL_MODEL_VERSION = f"local-{OCR_ENGINE}"


class LocalDescriber:
    """Describer for ENRICHER_PROVIDER=local. OCR runs in a worker thread (it is CPU-bound for
    a second or so) so the event loop keeps heartbeating leases meanwhile."""

    name = "local"
    prompt_version = PROMPT_VERSION

    def __init__(self, settings: Settings | None = None) -> None:
        self._max_pixels = getattr(settings, "pass2_max_image_pixels", DEFAULT_MAX_PIXELS)

    async def open(self) -> None:
        """Import the extra and load the models now, so that a missing extra or a broken model
        file stops the worker at start-up (ConfigError) instead of failing pointer by pointer."""
        await asyncio.to_thread(_load_engine)  # importing onnxruntime alone blocks for a while

    async def describe(self, item: EnrichmentInput) -> EnrichmentOutput:
        started = time.perf_counter()
        try:
            page = await asyncio.to_thread(_read_crop, item.cropped_image_bytes, self._max_pixels)
        except ConfigError as exc:
            # Only a describer that was never opened gets here (the extra and the models are
            # then checked on its first crop): the broken install fails that pointer for good.
            raise PermanentFailure("config", str(exc)) from exc
        analysis = await asyncio.to_thread(analyse, page, item.page_name)
        markdown = render_markdown(item, analysis)
        return EnrichmentOutput(
            rich_description=markdown,
            cross_references=analysis.references,
            embedding_text=embedding_text(item.pointer_title, item.page_name, item.discipline_name, markdown),
            metadata={
                "provider": "local-ocr",
                "model": "local",
                "model_version": LOCAL_MODEL_VERSION,
                "ocr_engine": OCR_ENGINE,
                "ocr_lines": len(analysis.lines),
                "ocr_ms": round(page.elapsed_ms, 1),
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                "dimensions_found": len(analysis.dimensions),
                "table_detected": analysis.table is not None,
                "low_confidence_lines": len(analysis.low_confidence),
                "prompt_version": PROMPT_VERSION,
            },
        )

    async def aclose(self) -> None:
        """The engine is shared by the process and holds no sockets or files: nothing to release."""
