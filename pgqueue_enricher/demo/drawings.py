"""The renderer of synthetic construction-drawing crops with their ground truth.

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
