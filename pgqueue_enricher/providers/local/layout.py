"""Layout from OCR boxes: reading-order lines, the table a schedule's grid makes, and which
line is the drawing's own title. `ink` is the crop as a boolean array (True = dark pixel)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class TextBox:
    """One detected run of text, in the crop's own pixel coordinates."""

    text: str
    confidence: float
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2


@dataclass
class TextLine:
    """Boxes that share a baseline, left to right. `joins[i]` is what goes between box i and
    box i+1: one space inside a phrase the detector happened to split (`2400` `mm`), two
    between separate pieces of text (table cells, a callout and a dimension beside it), so
    that no pattern reads across two cells."""

    boxes: list[TextBox] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)

    @property
    def y0(self) -> float:
        return min(b.y0 for b in self.boxes)

    @property
    def y1(self) -> float:
        return max(b.y1 for b in self.boxes)

    @property
    def height(self) -> float:
        return statistics.median(b.height for b in self.boxes)

    def text(self) -> str:
        parts = [self.boxes[0].text]
        for join, box in zip(self.joins, self.boxes[1:], strict=False):
            parts += [join, box.text]
        return "".join(parts)


def group_lines(boxes: list[TextBox], ink: np.ndarray) -> list[TextLine]:
    """Reading order: boxes whose vertical extents overlap by half the smaller height share a
    line; lines top to bottom, boxes left to right."""
    lines: list[TextLine] = []
    for box in sorted(boxes, key=lambda b: (b.cy, b.x0)):
        best: TextLine | None = None
        best_overlap = 0.0
        for line in lines:
            overlap = min(line.y1, box.y1) - max(line.y0, box.y0)
            smaller = min(line.height, box.height)
            if smaller > 0 and overlap / smaller >= 0.5 and overlap > best_overlap:
                best, best_overlap = line, overlap
        if best is None:
            lines.append(TextLine([box]))
        else:
            best.boxes.append(box)
    for line in lines:
        line.boxes.sort(key=lambda b: b.x0)
        line.joins = [
            _join(left, right, ink) for left, right in zip(line.boxes, line.boxes[1:], strict=False)
        ]
    lines.sort(key=lambda line: (line.y0 + line.y1) / 2)
    return lines


def _join(left: TextBox, right: TextBox, ink: np.ndarray) -> str:
    """One space when the two boxes are one phrase: close together with no ruled line between."""
    height = min(left.height, right.height)
    if right.x0 - left.x1 > 0.9 * height:
        return "  "
    x0, x1 = int(max(left.x1, 0)), int(math.ceil(max(right.x0, left.x1 + 1)))
    y0, y1 = int(max(max(left.y0, right.y0), 0)), int(math.ceil(min(left.y1, right.y1)))
    band = ink[y0:y1, x0:x1]
    if band.size and y1 - y0 > 2 and (band.mean(axis=0) > 0.7).any():
        return "  "  # a table rule between them
    return " "


@dataclass(frozen=True)
class Table:
    """A schedule's cells, header row first; every row has one cell per column."""

    rows: list[list[str]]


def _column_spans(block: list[TextLine]) -> list[tuple[float, float]]:
    """Columns are x ranges that most rows leave text in and no row bridges (a merged title
    cell or one OCR box covering two cells may bridge, so a few bridging rows are tolerated)."""
    left = min(b.x0 for line in block for b in line.boxes)
    right = max(b.x1 for line in block for b in line.boxes)
    width = int(math.ceil(right - left)) + 1
    coverage = [0] * width
    for line in block:
        for b in line.boxes:
            for x in range(int(b.x0 - left), int(math.ceil(b.x1 - left))):
                coverage[x] += 1
    tolerated = len(block) // 6
    spans: list[tuple[float, float]] = []
    start: int | None = None
    for x, count in enumerate([*coverage, 0]):
        if count > tolerated and start is None:
            start = x
        elif count <= tolerated and start is not None:
            spans.append((left + start, left + x))
            start = None
    return spans


def _ruled(block: list[TextLine], ink: np.ndarray) -> bool:
    """Schedules are drawn as grids: most gaps between rows carry a horizontal rule spanning
    the block. Notes and callout stacks that happen to align never do."""
    if len(block) < 2:
        return False
    height, width = ink.shape
    x0 = max(int(min(b.x0 for line in block for b in line.boxes)), 0)
    x1 = min(int(max(b.x1 for line in block for b in line.boxes)), width)
    if x1 - x0 < 10:
        return False
    found = 0
    for upper, lower in zip(block, block[1:], strict=False):
        top, bottom = max(int(upper.y1) - 2, 0), min(int(lower.y0) + 3, height)
        if bottom <= top:
            continue
        band = ink[top:bottom, x0:x1]
        if band.size and (band.mean(axis=1) > 0.8).any():
            found += 1
    return found >= 0.6 * (len(block) - 1)


def find_table(lines: list[TextLine], ink: np.ndarray) -> Table | None:
    """The largest block of consecutive multi-box lines whose text sits in shared columns:
    three or more columns, or two when the rows are separated by ruled lines."""
    best: Table | None = None
    index = 0
    while index < len(lines):
        if len(lines[index].boxes) < 2:
            index += 1
            continue
        end = index
        while (
            end + 1 < len(lines)
            and len(lines[end + 1].boxes) >= 2
            and lines[end + 1].y0 - lines[end].y1 < 2.5 * max(lines[end].height, 1)
        ):
            end += 1
        block = lines[index : end + 1]
        if len(block) >= 3:
            spans = _column_spans(block)
            if len(spans) >= 3 or (len(spans) == 2 and _ruled(block, ink)):
                rows = []
                for line in block:
                    cells = [""] * len(spans)
                    for b in line.boxes:
                        column = max(
                            range(len(spans)),
                            key=lambda c, b=b: min(b.x1, spans[c][1]) - max(b.x0, spans[c][0]),
                        )
                        cells[column] = f"{cells[column]} {b.text}".strip()
                    rows.append(cells)
                if best is None or len(rows) * len(spans) > len(best.rows) * len(best.rows[0]):
                    best = Table(rows=rows)
        index = end + 1
    return best


def _letter_height(box: TextBox, ink: np.ndarray) -> float:
    """Height of the lettering itself: detector boxes grow with nearby rules and leaders,
    the ink rows that carry most of the strokes do not."""
    region = ink[int(max(box.y0, 0)) : int(math.ceil(box.y1)), int(max(box.x0, 0)) : int(math.ceil(box.x1))]
    if region.size == 0:
        return box.height
    counts = region.sum(axis=1)
    counts[counts > 0.5 * region.shape[1]] = 0  # rules and underlines
    if counts.max() == 0:
        return box.height
    rows = [i for i, count in enumerate(counts) if count >= 0.2 * counts.max()]
    return float(rows[-1] - rows[0] + 1)


def title_line(lines: list[TextLine], ink: np.ndarray) -> str | None:
    """The drawing's own title is usually the tallest lettering in the crop (drawn larger
    and bold); on a tie the upper line wins, as titles head schedules and notes."""
    best: tuple[int, TextLine] | None = None
    for line in lines:
        worded = [b for b in line.boxes if sum(ch.isalpha() for ch in b.text) >= 3]
        if worded:
            height = round(max(_letter_height(b, ink) for b in worded))
            if best is None or height > best[0]:
                best = (height, line)
    return " ".join(best[1].text().split()) if best else None
