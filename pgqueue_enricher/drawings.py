"""Synthetic construction-drawing crops with their ground truth, for the demo and the benches.

Real crops cannot ship with the project, yet the demo needs something that looks like a sheet
and the local provider needs a yardstick. Every string is drawn from a small markup so the
renderer knows exactly which dimensions and references it put on the page:

- ``{4'-6"}`` is a dimension: drawn as ``4'-6"``, recorded in ``RenderedCrop.dimensions``;
- ``[3/A501|Detail 3/A501]`` is a reference: the left side is drawn, the right side (or the
  drawn text when there is no ``|``) is recorded in ``RenderedCrop.references``.

Fonts: DejaVu when the system has it, otherwise Pillow's built-in scalable default font, so
nothing here depends on a system font being installed.
"""

from __future__ import annotations

import io
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, ImageOps

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

_FACE_FILES = {
    "sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    "mono": ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"),
    "condensed": ("DejaVuSansCondensed.ttf", "DejaVuSansCondensed-Bold.ttf"),
    "serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"),
}
_MARKUP = re.compile(r"\{([^{}]*)\}|\[([^\[\]|]*)(?:\|([^\[\]]*))?\]")
_NBSP = "\u00a0"


@dataclass(frozen=True)
class RenderedCrop:
    """A crop as the worker would download it, plus what a perfect reader would extract."""

    png: bytes
    title: str
    dimensions: list[str]
    references: list[str]
    text_lines: list[str]


@dataclass(frozen=True)
class SampleCrop:
    """One demo pointer with its page context. `bbox` is (x, y, width, height) as fractions of
    the sheet, which is how the host app stores regions independent of render resolution."""

    discipline_name: str
    discipline_display_name: str
    page_name: str
    sheet_reflection: str
    pointer_title: str
    bbox: tuple[float, float, float, float]
    png_path: str
    crop: RenderedCrop


# -- markup and fonts ---------------------------------------------------------------------


def parse_markup(marked: str) -> tuple[str, list[str], list[str]]:
    """Split marked text into what is drawn, its dimensions and its references."""
    dims: list[str] = []
    refs: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            dims.append(match.group(1).replace(_NBSP, " "))
            return match.group(1)
        shown = match.group(2)
        refs.append((match.group(3) or shown).replace(_NBSP, " "))
        return shown

    plain = _MARKUP.sub(replace, marked).replace(_NBSP, " ")
    return plain, dims, refs


def _protect(marked: str) -> str:
    """Keep marked spans whole when wrapping: a note must never split `09 21 16` over lines."""
    return _MARKUP.sub(lambda m: m.group(0).replace(" ", _NBSP), marked)


@lru_cache(maxsize=64)
def load_font(size: int, face: str = "default", bold: bool = False) -> Font:
    """DejaVu when asked for and present; Pillow's embedded font otherwise (no system font needed)."""
    files = _FACE_FILES.get(face)
    if files is not None:
        try:
            return ImageFont.truetype(files[1] if bold else files[0], size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


# -- canvas -------------------------------------------------------------------------------


class _Sheet:
    """A white canvas that records the ground truth of every string drawn on it."""

    def __init__(self, face: str, size: int, width: int = 2600, height: int = 2000) -> None:
        self.image = Image.new("L", (width, height), 255)
        self.draw = ImageDraw.Draw(self.image)
        self.face = face
        self.size = size
        self.lines: list[str] = []
        self.dimensions: list[str] = []
        self.references: list[str] = []

    def font(self, size: int | None = None, bold: bool = False) -> Font:
        return load_font(size or self.size, self.face, bold)

    def _smear(self, bold: bool) -> int:
        # The embedded default font has no bold cut: drawing it twice, 1 px apart, is the
        # faux bold plotters and old CAD fonts produce.
        return 1 if bold and self.face not in _FACE_FILES else 0

    def measure(self, marked: str, size: int | None = None, bold: bool = False) -> tuple[int, int]:
        plain = parse_markup(marked)[0]
        box = self.draw.textbbox((0, 0), plain or " ", font=self.font(size, bold))
        return box[2] - box[0] + self._smear(bold), box[3] - box[1]

    def line_height(self, size: int | None = None) -> int:
        box = self.draw.textbbox((0, 0), "Ag'\"|", font=self.font(size))
        return box[3] - box[1]

    def text(
        self,
        xy: tuple[float, float],
        marked: str,
        *,
        size: int | None = None,
        bold: bool = False,
        anchor: str = "la",
        record: bool = True,
    ) -> tuple[int, int, int, int]:
        plain, dims, refs = parse_markup(marked)
        font = self.font(size, bold)
        smear = self._smear(bold)
        for dx in range(smear + 1):
            self.draw.text((xy[0] + dx, xy[1]), plain, font=font, fill=0, anchor=anchor)
        if record and plain.strip():
            self.lines.append(plain)
            self.dimensions.extend(dims)
            self.references.extend(refs)
        box = self.draw.textbbox(xy, plain, font=font, anchor=anchor)
        return int(box[0]), int(box[1]), int(box[2]) + smear, int(box[3])

    def line(self, points: Sequence[tuple[float, float]], width: int = 1) -> None:
        self.draw.line(list(points), fill=0, width=width)

    def rect(self, box: tuple[float, float, float, float], width: int = 1, fill: int | None = None) -> None:
        self.draw.rectangle(box, outline=0, width=width, fill=fill)

    def finish(self, title: str, margin: int = 18) -> RenderedCrop:
        content = ImageOps.invert(self.image).getbbox() or (0, 0, 1, 1)
        left, top = max(content[0] - margin, 0), max(content[1] - margin, 0)
        right = min(content[2] + margin, self.image.width)
        bottom = min(content[3] + margin, self.image.height)
        buffer = io.BytesIO()
        self.image.crop((left, top, right, bottom)).save(buffer, format="PNG", optimize=True)
        return RenderedCrop(
            png=buffer.getvalue(),
            title=parse_markup(title)[0],
            dimensions=list(dict.fromkeys(self.dimensions)),
            references=list(dict.fromkeys(self.references)),
            text_lines=list(self.lines),
        )


# -- drafting primitives ------------------------------------------------------------------


def _tick(sheet: _Sheet, x: float, y: float, half: float) -> None:
    """Architectural dimension ticks are short 45-degree slashes, not arrowheads."""
    sheet.line([(x - half, y + half), (x + half, y - half)], width=2)


def _horizontal_dimension(
    sheet: _Sheet, x1: float, x2: float, y: float, label: str, extend_to: float | None = None
) -> None:
    half = max(3, sheet.size // 4)
    sheet.line([(x1 - half, y), (x2 + half, y)])
    for x in (x1, x2):
        _tick(sheet, x, y, half)
        if extend_to is not None:
            direction = 1 if extend_to > y else -1
            sheet.line([(x, y - direction * half), (x, extend_to - direction * 3)])
    sheet.text(((x1 + x2) / 2, y - 3), label, anchor="md")


def _vertical_dimension(
    sheet: _Sheet, x: float, y1: float, y2: float, label: str, extend_to: float | None = None, gap: int = 6
) -> None:
    """Text stays horizontal beside the line: many offices draft it that way on details."""
    half = max(3, sheet.size // 4)
    sheet.line([(x, y1 - half), (x, y2 + half)])
    for y in (y1, y2):
        _tick(sheet, x, y, half)
        if extend_to is not None:
            direction = 1 if extend_to > x else -1
            sheet.line([(x - direction * half, y), (extend_to - direction * 3, y)])
    sheet.text((x + gap + half, (y1 + y2) / 2), label, anchor="lm")


def _leader(sheet: _Sheet, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A leader ends in a small filled arrowhead on the element it names."""
    sheet.line([start, end])
    angle = math.atan2(end[1] - start[1], end[0] - start[0])
    length = max(6, sheet.size // 2)
    left = (end[0] - length * math.cos(angle - 0.35), end[1] - length * math.sin(angle - 0.35))
    right = (end[0] - length * math.cos(angle + 0.35), end[1] - length * math.sin(angle + 0.35))
    sheet.draw.polygon([end, left, right], fill=0)


def _title_bubble(
    sheet: _Sheet, x: float, y: float, bubble: tuple[str, str] | None, title: str, scale: str | None
) -> None:
    """Detail title: a split circle (detail number over sheet number), an underlined title
    and the scale under the line, as on nearly every US drawing set."""
    radius = int(sheet.size * 1.5)
    if bubble is not None:
        # The circle grows to hold long sheet numbers (`FP-2.13`) instead of clipping them.
        radius = max(radius, sheet.measure(bubble[1], size=int(sheet.size * 0.8))[0] // 2 + sheet.size // 2)
    title_x = x
    if bubble is not None:
        cx, cy = x + radius, y + radius
        sheet.draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), outline=0, width=2)
        sheet.line([(cx - radius, cy), (cx + radius, cy)])
        sheet.text((cx, cy - 3), bubble[0], anchor="md", size=int(sheet.size * 1.1), bold=True)
        sheet.text((cx, cy + 3), bubble[1], anchor="ma", size=int(sheet.size * 0.8))
        title_x = x + 2 * radius + sheet.size
        y = cy - sheet.line_height(int(sheet.size * 1.3)) - 4
    box = sheet.text((title_x, y), title, size=int(sheet.size * 1.3), bold=True)
    sheet.line([(title_x, box[3] + 5), (box[2] + sheet.size * 3, box[3] + 5)], width=2)
    if scale:
        sheet.text((title_x, box[3] + 10), scale, size=int(sheet.size * 0.9))


def _hatch(sheet: _Sheet, box: tuple[float, float, float, float], spacing: int) -> None:
    x1, y1, x2, y2 = box
    offset = 0.0
    while offset < (x2 - x1) + (y2 - y1):
        ax, ay = x1 + offset, y1
        bx, by = x1, y1 + offset
        if ax > x2:
            ay += ax - x2
            ax = x2
        if by > y2:
            bx += by - y2
            by = y2
        if ay <= y2 and bx <= x2:
            sheet.line([(ax, ay), (bx, by)])
        offset += spacing


def _batt(sheet: _Sheet, box: tuple[float, float, float, float], horizontal: bool = False) -> None:
    """Batt insulation symbol: a sine wave along the cavity, as thick as the cavity."""
    x1, y1, x2, y2 = box
    across, along = (y2 - y1, x2 - x1) if horizontal else (x2 - x1, y2 - y1)
    period = max(across * 0.9, 10)
    points = []
    for i in range(int(along / 2) + 1):
        t = i * 2
        offset = across / 2 + (across / 2 - 2) * math.sin(2 * math.pi * t / period)
        points.append((x1 + t, y1 + offset) if horizontal else (x1 + offset, y1 + t))
    sheet.line(points)


def _stipple(sheet: _Sheet, box: tuple[float, float, float, float], rng: random.Random) -> None:
    """Concrete: scattered dots and small triangles (aggregate)."""
    x1, y1, x2, y2 = box
    count = int((x2 - x1) * (y2 - y1) / 900)
    for _ in range(count):
        x, y = rng.uniform(x1 + 4, x2 - 4), rng.uniform(y1 + 4, y2 - 4)
        if rng.random() < 0.7:
            sheet.draw.ellipse((x - 1, y - 1, x + 1, y + 1), fill=0)
        else:
            s = 3
            sheet.draw.polygon([(x, y - s), (x - s, y + s), (x + s, y + s)], outline=0)


# -- renderers ----------------------------------------------------------------------------


def render_schedule(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    font_size: int = 16,
    face: str = "default",
    notes: Sequence[str] = (),
    cell_padding: float = 0.6,
) -> RenderedCrop:
    """A door / panel / fixture schedule: bold title, boxed grid, header row, body rows."""
    sheet = _Sheet(face, font_size)
    pad_x, pad_y = int(font_size * cell_padding), int(font_size * 0.5)
    row_height = sheet.line_height() + 2 * pad_y
    widths = [
        max(sheet.measure(cell, bold=(r == 0))[0] for r, cell in enumerate([header, *column])) + 2 * pad_x
        for header, *column in zip(headers, *rows, strict=True)
    ]
    x0, y0 = 40, 40
    title_box = sheet.text((x0, y0), title, size=int(font_size * 1.35), bold=True)
    top = title_box[3] + font_size
    total_width = sum(widths)
    all_rows = [list(headers), *[list(r) for r in rows]]
    bottom = top + row_height * len(all_rows)
    sheet.rect((x0, top, x0 + total_width, bottom), width=2)
    for index, row in enumerate(all_rows):
        y = top + index * row_height
        if index:
            sheet.line([(x0, y), (x0 + total_width, y)], width=2 if index == 1 else 1)
        x = x0
        for col, cell in enumerate(row):
            if col:
                sheet.line([(x, top), (x, bottom)])
            sheet.text((x + pad_x, y + row_height / 2), cell, anchor="lm", bold=index == 0)
            x += widths[col]
    y = bottom + font_size
    for note in notes:
        box = sheet.text((x0, y), note, size=int(font_size * 0.9))
        y = box[3] + font_size // 2
    return sheet.finish(title)


def _wrap(sheet: _Sheet, marked: str, width: int) -> list[str]:
    words = _protect(marked).split(" ")
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if current and sheet.measure(candidate)[0] > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def render_notes(
    title: str,
    notes: Sequence[str],
    *,
    font_size: int = 16,
    face: str = "default",
    width: int = 720,
    numbering: str = "{n}.",
    line_spacing: float = 0.45,
) -> RenderedCrop:
    """A notes block: underlined heading, numbered notes with a hanging indent."""
    sheet = _Sheet(face, font_size)
    x0, y = 40, 40
    box = sheet.text((x0, y), title, size=int(font_size * 1.3), bold=True)
    sheet.line([(x0, box[3] + 4), (box[2], box[3] + 4)], width=2)
    y = box[3] + font_size
    indent = sheet.measure(numbering.format(n=len(notes)))[0] + font_size
    step = sheet.line_height() + int(font_size * line_spacing)
    for number, note in enumerate(notes, start=1):
        wrapped = _wrap(sheet, note, width - indent)
        label = numbering.format(n=number)
        for index, part in enumerate(wrapped):
            shown = f"{label} {part}" if index == 0 else part
            if index == 0:
                sheet.text((x0, y), label, record=False)
            sheet.text((x0 + indent, y), part, record=False)
            plain, dims, refs = parse_markup(shown)
            sheet.lines.append(plain)
            sheet.dimensions.extend(dims)
            sheet.references.extend(refs)
            y += step
        y += int(font_size * 0.3)
    return sheet.finish(title)


def _layer_pattern(
    sheet: _Sheet, name: str, box: tuple[float, float, float, float], rng: random.Random
) -> None:
    lowered = name.lower()
    if "brick" in lowered or "masonry" in lowered or "cmu" in lowered:
        _hatch(sheet, box, max(6, sheet.size // 2))
    elif "insul" in lowered or "batt" in lowered:
        _batt(sheet, box)
    elif "concrete" in lowered:
        _stipple(sheet, box, rng)
    elif "stud" in lowered:
        x1, y1, x2, y2 = box
        sheet.line([(x1, y1), (x2, y2)])
        sheet.line([(x2, y1), (x1, y2)])


def render_wall_section(
    title: str,
    layers: Sequence[tuple[str, str]],
    heights: Sequence[str],
    callouts: Sequence[str],
    *,
    bubble: tuple[str, str] | None = None,
    scale: str | None = None,
    font_size: int = 16,
    face: str = "default",
    seed: int = 0,
) -> RenderedCrop:
    """A wall in section: layer strips with a chain of thickness dimensions above, a chain of
    heights on the right, leader callouts on the left, title bubble underneath.

    `layers` are (material name, marked thickness); `heights` run bottom to top."""
    rng = random.Random(seed)
    sheet = _Sheet(face, font_size)
    label_widths = [sheet.measure(thickness)[0] for _, thickness in layers]
    callout_width = max((sheet.measure(c)[0] for c in callouts), default=0)
    wall_left = 60 + callout_width + font_size * 4
    segment_heights = [max(sheet.line_height() * 3, int(font_size * rng.uniform(3.5, 5.5))) for _ in heights]
    wall_top = 60 + font_size * 4
    wall_bottom = wall_top + sum(segment_heights)

    # Layers, left to right, each at least as wide as its dimension label.
    x = wall_left
    edges = [x]
    for (name, _thickness), label_width in zip(layers, label_widths, strict=True):
        width = max(label_width + font_size, int(font_size * rng.uniform(1.2, 3.0)))
        box = (x, wall_top, x + width, wall_bottom)
        sheet.rect(box, width=2)
        _layer_pattern(sheet, name, box, rng)
        x += width
        edges.append(x)
    wall_right = x

    # Thickness chain above the wall.
    chain_y = wall_top - font_size * 2
    for (_, thickness), left, right in zip(layers, edges, edges[1:], strict=False):
        _horizontal_dimension(sheet, left, right, chain_y, thickness, extend_to=wall_top)

    # Slab below the wall.
    slab = (wall_left - font_size * 3, wall_bottom, wall_right + font_size * 3, wall_bottom + font_size * 3)
    sheet.rect(slab, width=2)
    _stipple(sheet, slab, rng)

    # Height chain on the right, bottom to top.
    dim_x = wall_right + font_size * 3
    y = wall_bottom
    for label, height in zip(heights, segment_heights, strict=True):
        _vertical_dimension(sheet, dim_x, y - height, y, label, extend_to=wall_right)
        y -= height

    # Callouts on the left, leaders into a layer.
    step = (wall_bottom - wall_top) / max(len(callouts), 1)
    for index, callout in enumerate(callouts):
        ty = wall_top + step * (index + 0.5)
        box = sheet.text((wall_left - font_size * 3, ty), callout, anchor="rm")
        target_edge = rng.randrange(len(layers))
        target = ((edges[target_edge] + edges[target_edge + 1]) / 2, ty + rng.uniform(-1, 1) * font_size)
        _leader(sheet, (box[2] + 6, ty), target)

    _title_bubble(sheet, wall_left - font_size * 4, slab[3] + font_size * 2, bubble, title, scale)
    return sheet.finish(title)


def render_detail(
    title: str,
    callouts: Sequence[str],
    horizontal_dims: Sequence[str] = (),
    vertical_dims: Sequence[str] = (),
    *,
    bubble: tuple[str, str] | None = None,
    scale: str | None = None,
    geometry: str = "slab",
    font_size: int = 16,
    face: str = "default",
    seed: int = 0,
) -> RenderedCrop:
    """A detail: concrete element with reinforcing, leader callouts on the right, a chain of
    horizontal dimensions below, vertical dimensions on the left, title bubble underneath."""
    rng = random.Random(seed)
    sheet = _Sheet(face, font_size)
    left = 80 + max((sheet.measure(d)[0] for d in vertical_dims), default=0) + font_size * 3
    top = 80
    segment_widths = [
        max(sheet.measure(d)[0] + font_size * 2, int(font_size * rng.uniform(6, 9))) for d in horizontal_dims
    ] or [font_size * 16]
    width = sum(segment_widths)
    height = max(int(font_size * rng.uniform(7, 10)), len(vertical_dims) * sheet.line_height() * 3)
    right, bottom = left + width, top + height

    if geometry == "parapet":
        wall = (left + width * 0.55, top - font_size * 4, right, bottom)
        sheet.rect(wall, width=2)
        _hatch(sheet, wall, max(6, font_size // 2))
        # Coping: a bent plate over the wall, lapping down both faces.
        lip = font_size
        sheet.line(
            [(wall[0] - lip // 2, wall[1] + lip), (wall[0] - lip // 2, wall[1] - 4), (wall[2] + lip // 2, wall[1] - 4),
             (wall[2] + lip // 2, wall[1] + lip)],
            width=2,
        )  # fmt: skip
        roof = (left, bottom - font_size * 2, wall[0], bottom)
        sheet.rect(roof, width=2)
        insulation = (left, roof[1] - font_size * 2, wall[0], roof[1])
        sheet.rect(insulation)
        _batt(sheet, insulation, horizontal=True)
        targets = [wall, roof, insulation]
    else:
        body = (left, top, right, bottom)
        sheet.rect(body, width=2)
        _stipple(sheet, body, rng)
        cover = font_size
        for y in (top + cover, bottom - cover):
            sheet.line([(left + cover, y), (right - cover, y)], width=2)
            bars = max(3, int(width / (font_size * 3)))
            for i in range(bars):
                bx = left + cover + (width - 2 * cover) * i / (bars - 1)
                sheet.draw.ellipse(
                    (bx - 4, y + 3, bx + 4, y + 11)
                    if y < bottom - cover
                    else (bx - 4, y - 11, bx + 4, y - 3),
                    fill=0,
                )
        targets = [body]
        if geometry == "footing":
            pier = (left + width * 0.35, top - font_size * 5, left + width * 0.65, top)
            sheet.rect(pier, width=2)
            targets.append(pier)

    # Callouts to the right with leaders into the element.
    step = (bottom - top + font_size * 4) / max(len(callouts), 1)
    text_x = right + font_size * 5
    for index, callout in enumerate(callouts):
        ty = top - font_size * 2 + step * (index + 0.5)
        box = sheet.text((text_x, ty), callout, anchor="lm")
        aim = targets[index % len(targets)]
        target = (rng.uniform(aim[0] + 4, aim[2] - 4), rng.uniform(aim[1] + 4, aim[3] - 4))
        _leader(sheet, (box[0] - 6, ty), target)

    # Horizontal chain under the element.
    chain_y = bottom + font_size * 3
    x = left
    for label, seg in zip(horizontal_dims, segment_widths, strict=False):
        _horizontal_dimension(sheet, x, x + seg, chain_y, label, extend_to=bottom)
        x += seg

    # Vertical dimensions on the left, text to the left of the line.
    if vertical_dims:
        dim_x = left - font_size * 2
        seg = height / len(vertical_dims)
        for index, label in enumerate(vertical_dims):
            y1 = top + seg * index
            half = max(3, font_size // 4)
            sheet.line([(dim_x, y1 - half), (dim_x, y1 + seg + half)])
            for y in (y1, y1 + seg):
                _tick(sheet, dim_x, y, half)
                sheet.line([(dim_x - half, y), (left - 3, y)])
            sheet.text((dim_x - font_size * 0.6, y1 + seg / 2), label, anchor="rm")

    _title_bubble(sheet, left - font_size * 2, chain_y + font_size * 3, bubble, title, scale)
    return sheet.finish(title)


# -- the demo project ---------------------------------------------------------------------

_A501_REFLECTION = (
    'A-501 collects the exterior and interior wall sections for the east wing, drawn at 3/4" = 1\'-0". '
    "Wall types W1 (brick veneer on metal studs) and W3 (one-hour rated partition) are detailed here, "
    "with the door schedule for the corridor doors at the right edge of the sheet. "
    "Parapet and base-of-wall details are keyed back to plans on A-101 and structure on S-301; "
    "gypsum board work follows specification section 09 21 16."
)
_E601_REFLECTION = (
    "E-601 holds the panel schedules for the first-floor lighting and receptacle panels LP-1A and RP-1B. "
    "Each schedule lists circuit, load description, breaker size and connected load in VA. "
    "Panel notes at the bottom give mounting heights and refer back to the riser on E-501 and "
    "to specification section 26 24 16 for panelboards. "
    "A mounting detail shows clearances in front of the panels."
)
_G001_REFLECTION = (
    "G-001 is the general notes sheet that applies to every discipline in the set. "
    "It states the governing codes, the dimensioning conventions (dimensions to face of stud unless noted) "
    "and the fire-rated assembly requirements referenced by specification sections 07 84 00 and 09 21 16. "
    "An abbreviations table and a fire-rating legend sit on the right half of the sheet."
)


def _demo_crops() -> list[tuple[str, str, str, str, tuple[float, float, float, float], RenderedCrop]]:
    size = 18
    return [
        (
            "A-501 Wall Sections",
            "Typical Exterior Wall Section W1",
            "a-501/w1-wall-section.png",
            "architectural",
            (0.04, 0.06, 0.30, 0.52),
            render_wall_section(
                "TYPICAL EXTERIOR WALL - W1",
                [
                    ("brick", '{3 5/8"}'),
                    ("air", '{1"}'),
                    ("insulation", '{2"}'),
                    ("stud", '{6"}'),
                    ("gwb", '{5/8"}'),
                ],
                ["{4'-6\"}", "{3'-0\"}", "{1200 mm}"],
                [
                    'BRICK VENEER W/ TIES @ {16"} O.C.',
                    '{2"} RIGID INSULATION',
                    '{6"} 18 GA. METAL STUDS @ {16"} O.C.',
                    '{5/8"} TYPE X GWB',
                    "SEE [3/A501|Detail 3/A501]",
                ],
                bubble=("1", "A501"),
                scale='SCALE: {3/4"} = {1\'-0"}',
                font_size=size,
                seed=1,
            ),
        ),
        (
            "A-501 Wall Sections",
            "One-Hour Rated Partition W3",
            "a-501/w3-rated-partition.png",
            "architectural",
            (0.36, 0.06, 0.22, 0.48),
            render_wall_section(
                "1-HOUR RATED PARTITION - W3",
                [("gwb", '{5/8"}'), ("insulation", '{3 5/8"}'), ("gwb", '{5/8"}')],
                ["{9'-0\"}", '{6"}'],
                [
                    '{5/8"} TYPE X GWB EACH SIDE',
                    "SOUND ATTENUATION BATTS",
                    "UL DES. U419, SEE [A-101]",
                    "SEALANT PER [07 92 00]",
                ],
                bubble=("2", "A501"),
                scale='SCALE: {1 1/2"} = {1\'-0"}',
                font_size=size,
                seed=2,
            ),
        ),
        (
            "A-501 Wall Sections",
            "Parapet Detail",
            "a-501/parapet-detail.png",
            "architectural",
            (0.60, 0.06, 0.18, 0.30),
            render_detail(
                "PARAPET DETAIL",
                [
                    "METAL COPING",
                    '{1/2"} PLYWOOD SHEATHING',
                    "SEE [5/A501|Detail 5/A501]",
                    "TAPERED INSULATION",
                ],
                ["{2'-8\"}", "{1'-4\"}"],
                ["{3'-6\"}"],
                bubble=("3", "A501"),
                scale='SCALE: {1 1/2"} = {1\'-0"}',
                geometry="parapet",
                font_size=size,
                seed=3,
            ),
        ),
        (
            "A-501 Wall Sections",
            "Base of Wall at Slab Edge",
            "a-501/base-of-wall.png",
            "architectural",
            (0.60, 0.40, 0.18, 0.28),
            render_detail(
                "BASE OF WALL AT SLAB EDGE",
                ['#4 @ {12"} O.C. E.W.', '{3"} CLR.', "SEE [S-301]", "VAPOR RETARDER PER [07 26 00]"],
                ["{1'-0\"}", "{2'-0\"}"],
                ['{8"}'],
                bubble=("4", "A501"),
                scale='SCALE: {1"} = {1\'-0"}',
                geometry="footing",
                font_size=size,
                seed=4,
            ),
        ),
        (
            "A-501 Wall Sections",
            "Door Schedule",
            "a-501/door-schedule.png",
            "architectural",
            (0.80, 0.06, 0.18, 0.60),
            render_schedule(
                "DOOR SCHEDULE",
                ["MARK", "WIDTH", "HEIGHT", "TYPE", "FRAME", "RATING", "DETAIL"],
                [
                    ["101", "{3'-0\"}", "{7'-0\"}", "A", "HM", "20 MIN", "[3/A501|Detail 3/A501]"],
                    ["102", "{3'-0\"}", "{7'-0\"}", "A", "HM", "--", "[3/A501|Detail 3/A501]"],
                    ["103", "{6'-0\"}", "{7'-0\"}", "B", "ALUM", "--", "[6/A501|Detail 6/A501]"],
                    ["104", "{3'-6\"}", "{8'-0\"}", "C", "HM", "90 MIN", "[7/A502|Detail 7/A502]"],
                ],
                notes=["HARDWARE PER SECTION [08 71 00]"],
                font_size=size,
            ),
        ),
        (
            "E-601 Panel Schedules",
            "Panel LP-1A Schedule",
            "e-601/lp-1a.png",
            "electrical",
            (0.03, 0.05, 0.45, 0.42),
            render_schedule(
                "PANEL LP-1A  277/480V 3PH 4W",
                ["CKT", "DESCRIPTION", "BREAKER", "WIRE", "LOAD (VA)"],
                [
                    ["1", "LIGHTING - CORRIDOR 100", "20A/1P", "#12", "1440"],
                    ["3", "LIGHTING - OFFICES 101-104", "20A/1P", "#12", "1880"],
                    ["5", "EXIT SIGNS", "20A/1P", "#12", "120"],
                    ["7", "SITE LIGHTING", "30A/1P", "#10", "2400"],
                ],
                notes=["FEEDER PER RISER, SEE [E-501]"],
                font_size=size,
            ),
        ),
        (
            "E-601 Panel Schedules",
            "Panel RP-1B Schedule",
            "e-601/rp-1b.png",
            "electrical",
            (0.52, 0.05, 0.45, 0.42),
            render_schedule(
                "PANEL RP-1B  120/208V 3PH 4W",
                ["CKT", "DESCRIPTION", "BREAKER", "WIRE", "LOAD (VA)"],
                [
                    ["2", "RECEPTACLES - OFFICE 101", "20A/1P", "#12", "900"],
                    ["4", "RECEPTACLES - OFFICE 102", "20A/1P", "#12", "720"],
                    ["6", "COPIER", "20A/1P", "#12", "1500"],
                    ["8", "SPARE", "20A/1P", "--", "0"],
                ],
                font_size=size,
            ),
        ),
        (
            "E-601 Panel Schedules",
            "Panel Notes",
            "e-601/panel-notes.png",
            "electrical",
            (0.03, 0.52, 0.45, 0.30),
            render_notes(
                "PANEL NOTES",
                [
                    "PANELBOARDS SHALL COMPLY WITH SECTION [26 24 16].",
                    "MOUNT TOP OF PANEL AT {6'-6\"} AFF MAXIMUM.",
                    'PROVIDE {36"} CLEAR WORKING SPACE IN FRONT OF EACH PANEL.',
                    "FEEDER SIZES PER RISER DIAGRAM, SEE [E-501].",
                ],
                font_size=size,
            ),
        ),
        (
            "E-601 Panel Schedules",
            "Panel Mounting Detail",
            "e-601/panel-mounting.png",
            "electrical",
            (0.52, 0.52, 0.40, 0.40),
            render_detail(
                "PANEL MOUNTING DETAIL",
                ['{3/4"} FIRE-RETARDANT PLYWOOD', "16 GA. UNISTRUT", "SEE [2/E-501|Detail 2/E-501]"],
                ["{1200 mm}", "{3'-0\"}"],
                ["{6'-6\"}"],
                bubble=("5", "E601"),
                scale="NOT TO SCALE",
                geometry="footing",
                font_size=size,
                seed=9,
            ),
        ),
        (
            "G-001 General Notes",
            "General Notes",
            "g-001/general-notes.png",
            "architectural",
            (0.03, 0.04, 0.46, 0.70),
            render_notes(
                "GENERAL NOTES",
                [
                    "ALL WORK SHALL COMPLY WITH THE 2021 IBC AND LOCAL AMENDMENTS.",
                    "DIMENSIONS ARE TO FACE OF STUD UNLESS NOTED OTHERWISE.",
                    'GYPSUM BOARD ASSEMBLIES PER SECTION [09 21 16]; PROVIDE {5/8"} TYPE X GWB AT RATED WALLS.',
                    "FIRESTOPPING PER SECTION [07 84 00]. SEE [3/A501|Detail 3/A501] FOR HEAD OF WALL.",
                    'REINFORCE SLAB EDGES WITH #4 @ {12"} O.C., SEE [S-301].',
                    "DO NOT SCALE DRAWINGS.",
                ],
                font_size=size,
            ),
        ),
        (
            "G-001 General Notes",
            "Abbreviations",
            "g-001/abbreviations.png",
            "architectural",
            (0.52, 0.04, 0.22, 0.50),
            render_schedule(
                "ABBREVIATIONS",
                ["ABBR.", "MEANING"],
                [
                    ["AFF", "ABOVE FINISHED FLOOR"],
                    ["CLR.", "CLEAR"],
                    ["GWB", "GYPSUM WALL BOARD"],
                    ["O.C.", "ON CENTER"],
                    ["TYP.", "TYPICAL"],
                ],
                font_size=size,
            ),
        ),
        (
            "G-001 General Notes",
            "Fire Rating Legend",
            "g-001/fire-rating-notes.png",
            "architectural",
            (0.52, 0.58, 0.44, 0.36),
            render_notes(
                "FIRE-RATED ASSEMBLY NOTES",
                [
                    '1-HOUR PARTITIONS: {5/8"} TYPE X GWB EACH SIDE OF {3 5/8"} 20 GA. STUDS.',
                    "EXTEND RATED PARTITIONS TO DECK, SEE [2/A501|Detail 2/A501].",
                    "LABEL RATED WALLS ABOVE CEILING AT {10'-0\"} O.C. MAXIMUM.",
                ],
                font_size=size,
            ),
        ),
    ]


def sample_project_crops() -> list[SampleCrop]:
    """Twelve crops over three pages and two disciplines: what `demo` inserts."""
    reflections = {
        "A-501 Wall Sections": _A501_REFLECTION,
        "E-601 Panel Schedules": _E601_REFLECTION,
        "G-001 General Notes": _G001_REFLECTION,
    }
    return [
        SampleCrop(
            discipline_name=discipline,
            discipline_display_name=discipline.capitalize(),
            page_name=page,
            sheet_reflection=reflections[page],
            pointer_title=title,
            bbox=bbox,
            png_path=path,
            crop=crop,
        )
        for page, title, path, discipline, bbox, crop in _demo_crops()
    ]


# -- held-out set for the quality bench ---------------------------------------------------

_SHEET_PREFIXES = ("S", "M", "P", "A", "C", "FP", "L", "E")
_SPEC_SECTIONS = (
    "03 30 00", "03 20 00", "04 22 00", "05 12 00", "05 40 00", "06 10 00", "07 21 00", "07 27 26",
    "07 62 00", "07 92 00", "08 11 13", "08 14 16", "09 29 00", "09 51 13", "09 91 23", "22 11 16",
    "23 31 13", "26 05 19", "26 51 00", "28 31 00",
)  # fmt: skip
_MATERIALS = (
    ("concrete", "CAST-IN-PLACE CONCRETE"),
    ("cmu", '8" CMU'),
    ("insulation", "MINERAL WOOL"),
    ("stud", "WOOD STUDS"),
    ("gwb", "GYPSUM SHEATHING"),
    ("air", "DRAINAGE MAT"),
    ("masonry", "STONE VENEER"),
)
_FACES = ("sans", "mono", "condensed", "serif", "default")


def _sheet_id(rng: random.Random) -> str:
    prefix = rng.choice(_SHEET_PREFIXES)
    series, number = rng.randint(1, 9), rng.randint(1, 30)
    style = rng.randrange(4)
    if style == 0:
        return f"{prefix}-{series}{number:02d}"
    if style == 1:
        return f"{prefix}{series}.{number:02d}"
    if style == 2:
        return f"{prefix}{series}{number:02d}"
    return f"{prefix}-{series}.{number:02d}"


def _fraction(rng: random.Random) -> str:
    return rng.choice(("1/4", "1/2", "3/4", "3/8", "5/8", "7/8", "1/8", "3/16"))


def _dimension(rng: random.Random) -> str:
    style = rng.randrange(8)
    if style <= 2:
        inches = str(rng.randint(0, 11))
        if rng.random() < 0.25:
            inches = f"{inches} {_fraction(rng)}"
        return f"{rng.randint(1, 24)}'-{inches}\""
    if style == 3:
        return f'{_fraction(rng)}"'
    if style == 4:
        return f'{rng.randint(1, 11)} {_fraction(rng)}"'
    if style == 5:
        return f'{rng.choice((2, 3, 4, 6, 8, 10, 12, 16, 18, 24))}"'
    if style == 6:
        unit = rng.choice((" mm", "MM", " mm", "mm"))
        return f"{rng.choice((90, 150, 200, 450, 600, 900, 1500, 2400, 3050))}{unit}"
    return rng.choice(
        (
            f"{rng.randint(1, 9)}.{rng.randint(1, 9)} m",
            f"{rng.randint(10, 99)}.5 mm",
            f'{rng.randint(1, 3)}.25"',
        )
    )


def _dim(rng: random.Random) -> str:
    return "{" + _dimension(rng) + "}"


def _detail_ref(rng: random.Random) -> str:
    number, sheet = rng.randint(1, 12), _sheet_id(rng)
    verb = rng.choice(("SEE", "SEE", "SIM.", "REFER TO", "SEE DETAIL"))
    return f"{verb} [{number}/{sheet}|Detail {number}/{sheet}]"


def _sheet_ref(rng: random.Random) -> str:
    sheet = _sheet_id(rng)
    return f"{rng.choice(('SEE SHEET', 'REFER TO', 'SEE', 'COORDINATE WITH'))} [{sheet}]"


def _spec_ref(rng: random.Random) -> str:
    return f"{rng.choice(('PER SECTION', 'SPEC SECTION', 'SEE SECTION', 'AS SPECIFIED IN'))} [{rng.choice(_SPEC_SECTIONS)}]"


def _any_ref(rng: random.Random) -> str:
    return rng.choice((_detail_ref, _sheet_ref, _spec_ref))(rng)


def _held_out_schedule(rng: random.Random, size: int, face: str) -> RenderedCrop:
    kind = rng.choice(("WINDOW", "LOUVER", "EQUIPMENT", "OPENING"))
    headers = ["TAG", "W", "H", "SILL", "REMARKS"]
    rows = []
    for index in range(rng.randint(3, 5)):
        tag = f"{kind[0]}{rng.randint(1, 9)}{index}"
        rows.append([tag, _dim(rng), _dim(rng), _dim(rng), _any_ref(rng) if rng.random() < 0.7 else "--"])
    return render_schedule(
        f"{kind} SCHEDULE", headers, rows, font_size=size, face=face, cell_padding=rng.uniform(0.4, 0.9)
    )


def _held_out_notes(rng: random.Random, size: int, face: str) -> RenderedCrop:
    templates = [
        lambda: f"INSTALL FLASHING {_spec_ref(rng)} WITH {_dim(rng)} MIN. LAP.",
        lambda: f"ANCHOR BOLTS {_dim(rng)} DIA. x {_dim(rng)} EMBED, {_detail_ref(rng)}.",
        lambda: f"MAINTAIN {_dim(rng)} CLEARANCE AT ALL EQUIPMENT; {_sheet_ref(rng)}.",
        lambda: f"SEALANT JOINTS AT {_dim(rng)} O.C. {_spec_ref(rng)}.",
        lambda: f"STEEL DECK {rng.choice((18, 20, 22))} GA. WITH {_dim(rng)} RIBS, {_detail_ref(rng)}.",
        lambda: f"CONTRACTOR TO FIELD VERIFY ALL {_dim(rng)} OFFSETS BEFORE FABRICATION.",
        lambda: f"PROVIDE BLOCKING AT {_dim(rng)} A.F.F. FOR WALL-MOUNTED ITEMS, {_sheet_ref(rng)}.",
    ]
    notes = [rng.choice(templates)() for _ in range(rng.randint(3, 5))]
    title = rng.choice(("STRUCTURAL NOTES", "KEYED NOTES", "SHEET NOTES", "MECHANICAL NOTES"))
    numbering = rng.choice(("{n}.", "{n})", "({n})"))
    return render_notes(
        title, notes, font_size=size, face=face, width=rng.randint(560, 900), numbering=numbering,
        line_spacing=rng.uniform(0.3, 0.8),
    )  # fmt: skip


def _held_out_wall(rng: random.Random, size: int, face: str, seed: int) -> RenderedCrop:
    layers = [(name, _dim(rng)) for name, _ in rng.sample(_MATERIALS, rng.randint(2, 4))]
    heights = [_dim(rng) for _ in range(rng.randint(2, 3))]
    callouts = [
        f"{_dim(rng)} {rng.choice(_MATERIALS)[1]}",
        f"#{rng.randint(3, 8)} BARS @ {_dim(rng)} O.C.",
        _any_ref(rng),
        f"{rng.choice((16, 18, 20))} GA. GIRTS @ {_dim(rng)} O.C.",
    ]
    rng.shuffle(callouts)
    return render_wall_section(
        rng.choice(("EXTERIOR WALL AT GRID 4", "FOUNDATION WALL", "SHAFT WALL", "RETAINING WALL")),
        layers,
        heights,
        callouts,
        bubble=(str(rng.randint(1, 12)), _sheet_id(rng)),
        scale=f"SCALE: {_dim(rng)} = {{1'-0\"}}",
        font_size=size,
        face=face,
        seed=seed,
    )


def _held_out_detail(rng: random.Random, size: int, face: str, seed: int) -> RenderedCrop:
    callouts = [
        f"#{rng.randint(3, 8)} @ {_dim(rng)} O.C. {rng.choice(('E.W.', 'T&B', 'EACH FACE'))}",
        _any_ref(rng),
        f"{_dim(rng)} {rng.choice(('CLR.', 'CHAMFER', 'GROUT', 'NON-SHRINK GROUT'))}",
        _any_ref(rng),
    ]
    rng.shuffle(callouts)
    return render_detail(
        rng.choice(("GRADE BEAM", "PILE CAP", "SLAB THICKENING", "CANOPY EDGE", "CURB DETAIL")),
        callouts,
        [_dim(rng) for _ in range(rng.randint(1, 3))],
        [_dim(rng) for _ in range(rng.randint(0, 2))],
        bubble=(str(rng.randint(1, 12)), _sheet_id(rng)),
        scale=rng.choice(("NTS", None, 'SCALE: {3/4"} = {1\'-0"}')),
        geometry=rng.choice(("slab", "footing", "parapet")),
        font_size=size,
        face=face,
        seed=seed,
    )


def heldout_crops(seed: int = 7, count: int = 40) -> list[RenderedCrop]:
    """Crops the local provider was not tuned on: other vocabulary, sheet-id styles, fonts,
    sizes and layouts than the demo's, drawn from a seeded generator so runs are comparable."""
    rng = random.Random(seed)
    crops: list[RenderedCrop] = []
    for index in range(count):
        size = rng.randint(15, 24)
        face = rng.choice(_FACES)
        kind = index % 4
        if kind == 0:
            crops.append(_held_out_schedule(rng, size, face))
        elif kind == 1:
            crops.append(_held_out_notes(rng, size, face))
        elif kind == 2:
            crops.append(_held_out_wall(rng, size, face, seed * 1000 + index))
        else:
            crops.append(_held_out_detail(rng, size, face, seed * 1000 + index))
    return crops
