"""The words sent to Gemini for one pointer.

The order is chosen for implicit caching: the constant instructions travel as the system
instruction, then the page context (identical for every pointer of a page), then the
crop, and only then the pointer title. Pointers of one page processed close together share
the longest possible prefix, which Gemini bills as cached tokens.

Bump PROMPT_VERSION whenever the instructions or the layout change: it is stored in
`enrichment_metadata`, so descriptions written by an older prompt can be found and requeued.
"""

from __future__ import annotations

from google.genai import types

from pgqueue_enricher.providers.types import EnrichmentInput

PROMPT_VERSION = "pass2-2026-12-01.1"

SECTION_HEADINGS = (
    "## Description",
    "## Extracted Content",
    "## Table Contents",
    "## Cross-References",
    "## Notes",
)

NO_REFLECTION = "(no sheet reflection available)"
TITLE_PREFIX = "Pointer title: "
# A sheet reflection is a summary; one that is longer than this is a Pass 1 bug, and
# sending all of it on every pointer of the page would multiply the cost.
MAX_REFLECTION_CHARS = 30_000

SYSTEM_INSTRUCTION = """\
You are reading one cropped region ("pointer") of a construction drawing sheet so that \
builders can later search for it. Accuracy matters more than brevity: a missed dimension \
or a misread callout sends someone to the wrong place on site.

For the crop you are given:
1. Read every piece of text in it: labels, notes, keynotes, tags, titles, stamps.
2. Extract every dimension exactly as written, with its units (for example 4'-6", 5/8", \
1200 mm), and say what it measures when the drawing makes that clear.
3. List every specification callout (materials, products, gauges, ratings, spacing).
4. Describe the visual content: what the region depicts (a wall section, a plan, an \
elevation, a schedule...), the materials indicated by hatching or symbols, and each leader \
line with the note it carries and what it points to.
5. List every cross-reference to other sheets, details or specification sections \
(for example S-101, Detail 4/A3.01, 09 21 16), including section-cut symbols, detail \
bubbles and tag references (door, window, wall-type and equipment tags).
6. Transcribe any table or schedule row by row as a markdown table, keeping empty cells empty.
7. Note anything ambiguous, illegible, or cut off at the edge of the crop instead of \
guessing, and anything that looks incorrect or unusual (conflicting dimensions, a \
reference to a sheet that seems not to exist, a missing unit).
8. When text is small or dense, use code execution to zoom into or crop the image and read \
it again before answering.

Answer in markdown with exactly these sections, in this order:
## Description
What this region shows and what it is for, in a few sentences, including what it depicts \
visually, the materials shown by hatching or symbols, and what the leader lines point to.
## Extracted Content
Every piece of text, dimension and specification callout, as a list.
## Table Contents
Only when the crop contains a table or schedule: each one as a markdown table. Leave this \
section out entirely when there is no table.
## Cross-References
A bullet list with one reference per line (sheet ids, details as "Detail N/SHEET", spec \
sections as "NN NN NN", section cuts as "Section N/SHEET", tags as written), or the single \
word None.
## Notes
Anything ambiguous, illegible or cut off at the crop edge, and anything that looks \
incorrect or unusual, or None.
"""

REGROUND_PREFIX = "Why this region was added (instruction from the re-ground step): "
# The host writes a sentence or two; a longer one is cut like a runaway reflection.
MAX_REGROUND_CHARS = 2_000


def page_context(item: EnrichmentInput) -> str:
    """The text shared by every pointer of one page; keep it free of per-pointer data."""
    reflection = (item.sheet_reflection or "").strip() or NO_REFLECTION
    if len(reflection) > MAX_REFLECTION_CHARS:
        reflection = reflection[:MAX_REFLECTION_CHARS] + "\n[sheet reflection truncated]"
    return (
        f"Page: {item.page_name}\n"
        f"Discipline: {item.discipline_name}\n"
        f"Sheet reflection (a summary of the whole sheet, for context):\n{reflection}\n"
    )


def title_line(title: str) -> str:
    """One line whatever the title holds, so the fake server and log readers can parse it."""
    return TITLE_PREFIX + " ".join(title.split())


def reground_line(instruction: str) -> str:
    return REGROUND_PREFIX + " ".join(instruction.split())[:MAX_REGROUND_CHARS]


def build_contents(item: EnrichmentInput, mime: str) -> list[types.Content]:
    """One user turn: page context, the re-ground instruction if any, the crop, the title."""
    parts = [types.Part.from_text(text=page_context(item))]
    if item.reground_instruction and item.reground_instruction.strip():
        parts.append(types.Part.from_text(text=reground_line(item.reground_instruction)))
    parts += [
        types.Part.from_bytes(data=item.cropped_image_bytes, mime_type=mime),
        types.Part.from_text(text=title_line(item.pointer_title)),
    ]
    return [types.Content(role="user", parts=parts)]
