"""What the rules pull out of one OCR page: reading-order lines, dimensions, callouts,
cross-references, the table and title, and the readings too unsure to trust."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgqueue_enricher.providers.local.layout import Table, find_table, group_lines, title_line
from pgqueue_enricher.providers.local.rules import (
    find_callouts,
    find_cross_references,
    find_dimensions,
    page_sheet_id,
)

if TYPE_CHECKING:
    from pgqueue_enricher.providers.local.ocr import OcrPage

LOW_CONFIDENCE = 0.80


@dataclass(frozen=True)
class Analysis:
    lines: list[str]
    dimensions: list[str]
    callouts: list[str]
    references: list[str]
    table: Table | None
    title: str | None
    low_confidence: list[tuple[str, float]]


def analyse(page: OcrPage, page_name: str) -> Analysis:
    """Everything the rules can pull out of the OCR boxes. A lone symbol (`△` read off
    aggregate hatching, `+` off a tick) is drawing, not text: it stays out of the lines
    and, when the reading is unsure, shows up only in the low-confidence note."""
    readable = [b for b in page.boxes if len(b.text) > 1 or b.text.isalnum()]
    lines = group_lines(readable, page.ink)
    texts = [line.text() for line in lines]
    dimensions: list[str] = []
    callouts: list[str] = []
    for text in texts:
        dimensions.extend(find_dimensions(text))
        callouts.extend(find_callouts(text))
    return Analysis(
        lines=texts,
        dimensions=list(dict.fromkeys(dimensions)),
        callouts=list(dict.fromkeys(callouts)),
        references=find_cross_references(texts, page_sheet_id(page_name)),
        table=find_table(lines, page.ink),
        title=title_line(lines, page.ink),
        low_confidence=[(b.text, b.confidence) for b in page.boxes if b.confidence < LOW_CONFIDENCE],
    )
