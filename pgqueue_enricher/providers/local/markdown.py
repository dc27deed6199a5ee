"""The offline description as markdown, in the Gemini path's section layout, so write-back,
search and Brain Mode treat both providers alike."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pgqueue_enricher.providers.local.analysis import LOW_CONFIDENCE

if TYPE_CHECKING:
    from pgqueue_enricher.providers.local.analysis import Analysis
    from pgqueue_enricher.providers.local.layout import Table
    from pgqueue_enricher.providers.types import EnrichmentInput

OCR_ENGINE = "rapidocr-onnxruntime"

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_|<>\[\]])")
_NUMBERED = re.compile(r"^\(?\d{1,2}[.)]")


def _md(text: str) -> str:
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def _kind_of_region(title: str, table: Table | None, lines: list[str], dimensions: list[str]) -> str:
    upper = " ".join([title, *lines[:3]]).upper()
    if table is not None or "SCHEDULE" in upper:
        return "a schedule (tabular data)"
    if "NOTES" in upper or sum(bool(_NUMBERED.match(line)) for line in lines) >= 3:
        return "a notes block"
    if "SECTION" in upper:
        return "a section drawing"
    if "DETAIL" in upper:
        return "a construction detail"
    if len(dimensions) >= 3:
        return "a dimensioned drawing"
    return "a drawing region"


def _squash(text: str) -> str:
    return re.sub(r"\W", "", text).upper()


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _first_sentence(text: str | None) -> str | None:
    if not text or not text.strip():
        return None
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    return sentence if len(sentence) <= 300 else sentence[:297] + "..."


def render_markdown(item: EnrichmentInput, analysis: Analysis) -> str:
    """The Gemini path's section layout, filled from OCR and rules."""
    kind = _kind_of_region(item.pointer_title, analysis.table, analysis.lines, analysis.dimensions)
    found = []
    if analysis.table is not None:
        found.append(
            f"a table of {len(analysis.table.rows) - 1} rows by {len(analysis.table.rows[0])} columns"
        )
    if analysis.dimensions:
        found.append(_plural(len(analysis.dimensions), "dimension"))
    if analysis.callouts:
        found.append(_plural(len(analysis.callouts), "specification callout"))
    if analysis.references:
        found.append(_plural(len(analysis.references), "cross-reference"))
    description = [
        f"**{_md(item.pointer_title)}** on {_md(item.page_name)} ({_md(item.discipline_name)}) appears to be {kind}."
    ]
    if analysis.title and _squash(analysis.title) != _squash(item.pointer_title):
        description.append(f'Its drawn title reads "{_md(analysis.title)}".')
    if analysis.lines:
        summary = f"OCR read {_plural(len(analysis.lines), 'line')} of text"
        description.append(summary + (f", including {', '.join(found)}." if found else "."))
    else:
        description.append("No text could be read from the crop.")
    context = _first_sentence(item.sheet_reflection)
    if context:
        description.append(f"Sheet context: {_md(context)}")

    sections = ["## Description", " ".join(description), "", "## Extracted Content"]
    if analysis.lines:
        sections.append("### Text (reading order)")
        sections.extend(f"- {_md(line)}" for line in analysis.lines)
    else:
        sections.append("- No text detected.")
    if analysis.dimensions:
        sections += ["", "### Dimensions"]
        sections.extend(f"- {_md(d)}" for d in analysis.dimensions)
    if analysis.callouts:
        sections += ["", "### Specification Callouts"]
        sections.extend(f"- {_md(c)}" for c in analysis.callouts)
    if analysis.table is not None:
        header, *body = analysis.table.rows
        sections += ["", "## Table Contents"]
        sections.append("| " + " | ".join(_md(c) or " " for c in header) + " |")
        sections.append("|" + "|".join(" --- " for _ in header) + "|")
        sections.extend("| " + " | ".join(_md(c) for c in row) + " |" for row in body)
    sections += ["", "## Cross-References"]
    sections.extend([f"- {_md(r)}" for r in analysis.references] or ["- None"])
    sections += [
        "",
        "## Notes",
        f"- Produced offline by local OCR ({OCR_ENGINE}) and rule-based extraction, not by a vision "
        "model: linework, hatching and symbols are not interpreted, and text is reported as read.",
    ]
    if analysis.low_confidence:
        shown = "; ".join(
            f'"{_md(text)}" ({confidence:.2f})' for text, confidence in analysis.low_confidence[:20]
        )
        sections.append(
            f"- Low-confidence text (below {LOW_CONFIDENCE:.2f}), verify against the drawing: {shown}"
        )
    else:
        sections.append("- No low-confidence text.")
    return "\n".join(sections).strip() + "\n"
