"""The offline provider (ENRICHER_PROVIDER=local): OCR plus rules instead of Gemini and Voyage.

It exists so the demo and the tests run with no keys and no network, and so an operator can
try the pipeline before buying API access. It writes the same markdown sections as the
Gemini path, so everything downstream (write-back, search, Brain Mode) treats both alike;
the `## Notes` section says plainly that no vision model was involved.

rapidocr-onnxruntime, numpy and Pillow are the optional `local` extra: they are imported on
first use, never at import time, so `LexicalEmbedder` and the rest of the package work
without them.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import re
import statistics
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pgqueue_enricher.errors import PermanentFailure
from pgqueue_enricher.providers.references import find_references, is_sheet_id, normalise_references
from pgqueue_enricher.providers.types import (
    EMBEDDING_DIMENSIONS,
    Embedding,
    EnrichmentInput,
    EnrichmentOutput,
    embedding_text,
)

if TYPE_CHECKING:
    import numpy as np

    from pgqueue_enricher.settings import Settings

PROMPT_VERSION = "local-1"
OCR_ENGINE = "rapidocr-onnxruntime"
LOW_CONFIDENCE = 0.80
INSTALL_HINT = "install the `local` extra: pip install 'pgqueue-enricher[local]'"

# Crops rendered at sheet scale often carry text only 8-14 px tall, which the detector
# half misses. A first detection pass measures the text; when its boxes are shorter than
# SMALL_TEXT_PX the crop is enlarged so they reach TARGET_TEXT_PX, then read again. Text
# that is already large enough is read as is (enlarging it gains nothing and costs time).
SMALL_TEXT_PX = 20.0
TARGET_TEXT_PX = 28.0
MAX_UPSCALE = 3.0
MAX_OCR_SIDE = 2000
DEFAULT_MAX_PIXELS = 100_000_000


# -- the OCR engine -----------------------------------------------------------------------

_engine_lock = threading.Lock()
_engine: Any = None


def _get_engine() -> Any:
    """One engine per process: loading the three ONNX models takes about half a second and
    100 MB, and every describer can share them. Call with `_engine_lock` held."""
    global _engine
    if _engine is None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise PermanentFailure(
                "config",
                f"ENRICHER_PROVIDER=local needs rapidocr-onnxruntime, which is not installed: {INSTALL_HINT}",
            ) from exc
        # "max" keeps the detector at the crop's own resolution (we enlarge small crops
        # ourselves); the default "min" would blow every crop up to 736 px on its short side.
        # A lower box threshold keeps short labels such as a lone `2"` under a dimension line.
        _engine = RapidOCR(
            det_limit_type="max", det_limit_side_len=MAX_OCR_SIDE, det_box_thresh=0.3, print_verbose=False
        )
    return _engine


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


@dataclass(frozen=True)
class OcrPage:
    boxes: list[TextBox]
    ink: Any  # boolean numpy array (True = dark pixel), crop coordinates
    elapsed_ms: float


def _decode(data: bytes, max_pixels: int) -> Any:
    """Crop bytes to a grayscale array; anything Pillow cannot read is a rejected crop."""
    try:
        import numpy as np
        from PIL import Image
    except ImportError as exc:
        raise PermanentFailure(
            "config", f"ENRICHER_PROVIDER=local needs Pillow and numpy: {INSTALL_HINT}"
        ) from exc
    if not data:
        raise PermanentFailure("crop_rejected", "crop is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise PermanentFailure(
                    "crop_rejected", f"crop is {width}x{height} pixels, over the {max_pixels} pixel limit"
                )
            image.load()
            if image.mode in ("RGBA", "LA", "P"):
                # Transparent PNGs keep their linework in alpha: flatten onto white paper.
                rgba = image.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(paper, rgba)
            gray = np.asarray(image.convert("L"))
    except PermanentFailure:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PermanentFailure("crop_rejected", f"crop is not a readable image: {exc}") from None
    if min(gray.shape) < 4:
        raise PermanentFailure(
            "crop_rejected", f"crop is too small to read ({gray.shape[1]}x{gray.shape[0]} px)"
        )
    return gray


def _fit_factor(gray: Any) -> float:
    """Shrink factor for crops the detector would refuse (over MAX_OCR_SIDE), else 1."""
    return min(1.0, MAX_OCR_SIDE / max(gray.shape))


def _upscale_factor(text_height: float, shape: tuple[int, ...]) -> float:
    if text_height <= 0 or text_height >= SMALL_TEXT_PX:
        return 1.0
    return max(1.0, min(MAX_UPSCALE, TARGET_TEXT_PX / text_height, MAX_OCR_SIDE / max(shape)))


MIN_TEXT_SCORE = 0.5


def _letterbox(gray: np.ndarray) -> tuple[np.ndarray, int]:
    """The padding RapidOCR adds itself to short or very wide crops: the detector needs some
    height to work with. Returns the padded image and the padding added at the top."""
    import cv2

    height, width = gray.shape
    if height > 30 and width / height <= 8:
        return gray, 0
    pad = abs(max(int(width / 8), 30) * 2 - height) // 2
    return cv2.copyMakeBorder(gray, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=255), pad


def _detect(engine: Any, gray: np.ndarray) -> tuple[Any, np.ndarray, int]:
    import cv2

    padded, pad = _letterbox(gray)
    bgr = cv2.cvtColor(padded, cv2.COLOR_GRAY2BGR)
    boxes, _ = engine.auto_text_det(bgr)
    return boxes, bgr, pad


def _text_height(boxes: Any) -> float:
    import numpy as np

    if boxes is None or len(boxes) == 0:
        return 0.0
    return float(
        statistics.median(min(np.linalg.norm(b[0] - b[3]), np.linalg.norm(b[0] - b[1])) for b in boxes)
    )


Recognised = tuple["np.ndarray", str, float, list[Any], list[str]]


def _recognise(engine: Any, gray: np.ndarray) -> tuple[list[Recognised], np.ndarray]:
    """RapidOCR's pipeline step by step, for two changes to its `__call__`: the angle
    classifier runs only on vertical boxes (on long horizontal lines it sometimes decides a
    line is upside down and turns it to garbage), and the character boxes come back for
    `_restore_spaces`. Small text is enlarged first (see SMALL_TEXT_PX).

    Returns (box, text, confidence, char boxes, chars) per text box, and the image they
    were read from (enlarged or not) whose coordinates the boxes are in."""
    import cv2
    import numpy as np

    dt_boxes, bgr, pad = _detect(engine, gray)
    factor = _upscale_factor(_text_height(dt_boxes), gray.shape)
    if factor > 1.1:
        gray = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        dt_boxes, bgr, pad = _detect(engine, gray)
    if dt_boxes is None or len(dt_boxes) == 0:
        return [], gray
    crops = engine.get_crop_img_list(bgr, dt_boxes)
    vertical = [
        i
        for i, box in enumerate(dt_boxes)
        if np.linalg.norm(box[0] - box[3]) >= 1.5 * max(np.linalg.norm(box[0] - box[1]), 1.0)
    ]
    if vertical:
        turned, _, _ = engine.text_cls([crops[i] for i in vertical])
        for i, crop in zip(vertical, turned, strict=True):
            crops[i] = crop
    recognised, _ = engine.text_rec(crops, True)
    try:
        with_chars = engine.cal_rec_boxes(crops, dt_boxes, recognised)
    except Exception:  # character boxes are a nicety; the text itself is already read
        with_chars = [[text, score, [], [], []] for text, score, *_ in recognised]
    results = []
    for box, (text, score, char_boxes, chars, *_) in zip(dt_boxes, with_chars, strict=True):
        if float(score) < MIN_TEXT_SCORE or not text:
            continue
        box = np.asarray(box, dtype=float).copy()
        box[:, 1] -= pad
        results.append((box, str(text), float(score), list(char_boxes), list(chars)))
    return results, gray


def _ocr(data: bytes, max_pixels: int) -> OcrPage:
    """Decode, enlarge, run RapidOCR, repair word spacing. Blocking: call in a thread."""
    import cv2

    gray = _decode(data, max_pixels)
    fit = _fit_factor(gray)
    work = gray if fit == 1.0 else cv2.resize(gray, None, fx=fit, fy=fit, interpolation=cv2.INTER_AREA)
    started = time.perf_counter()
    with _engine_lock:
        engine = _get_engine()
        try:
            found, read = _recognise(engine, work)
        except PermanentFailure:
            raise
        except Exception as exc:  # the engine's own failures on odd input
            raise PermanentFailure("crop_rejected", f"OCR could not read the crop: {exc}") from None
    elapsed_ms = (time.perf_counter() - started) * 1000
    scale = fit * read.shape[0] / work.shape[0]
    ink = read < 128
    boxes: list[TextBox] = []
    for box, text, confidence, char_boxes, chars in found:
        text = _normalise_ocr_text(_restore_spaces(text, char_boxes, chars, box, ink))
        if not text:
            continue
        boxes.append(
            TextBox(
                text=text,
                confidence=confidence,
                x0=float(box[:, 0].min()) / scale,
                y0=float(box[:, 1].min()) / scale,
                x1=float(box[:, 0].max()) / scale,
                y1=float(box[:, 1].max()) / scale,
            )
        )
    return OcrPage(boxes=boxes, ink=gray < 128, elapsed_ms=elapsed_ms)


# A space is never restored next to these: marks and punctuation attach to their neighbours
# ("4'-6\"", "O.C.", "3/A501"), and a false space there breaks a dimension or a sheet id.
_ATTACH_LEFT = frozenset("'\".,:;)/-\u2033\u2032\u201d\u2019")
_ATTACH_RIGHT = frozenset("(#/-$")


# Word-gap thresholds, tuned on rendered crops in five fonts (bench/local_quality.py and
# the word-level agreement with the renderer's text): a blank run is a candidate space
# when it is at least GAP_FACTOR of the box height, or EMITTED_FACTOR of the spaces the
# recogniser did emit on that line; it becomes a space when the character pitch jumps
# there by PITCH_JUMP (LETTER_PITCH_JUMP between letters, which also need LETTER_GAP times
# the line's typical inter-letter gap).
GAP_FACTOR = 0.21
EMITTED_FACTOR = 0.6
PITCH_JUMP = 1.35
LETTER_PITCH_JUMP = 1.2
LETTER_GAP = 1.5


def _is_word_gap(
    left: str, right: str, gap: float, threshold: float, step: float, pitch: float, typical_gap: float
) -> bool:
    """Whether a blank run of `gap` px between two characters `step` px apart is a space."""
    if " " in (left, right) or left in _ATTACH_RIGHT or right in _ATTACH_LEFT:
        return False
    if left.isdigit() and right.isdigit():
        # "16" must never become "1 6": glued whole-and-fraction numbers (`35/8"`) are split
        # by the dimension rules instead, where the fraction says where the cut goes.
        return False
    if left in '",;:':
        # Punctuation is narrow, so a space after it barely moves the pitch: pixels decide.
        return gap >= threshold
    if left == ".":
        # ...more strictly after a full stop, which also sits inside `O.C.` and `A.F.F.`.
        return gap >= 1.5 * threshold
    if left.isalpha() and right.isalpha() and left != right:
        # Between letters the gap is the better witness; a doubled wide letter (`MM`) has
        # a large pitch and gap of its own, so it gets the stricter test below.
        return gap >= max(threshold, LETTER_GAP * typical_gap) and step >= LETTER_PITCH_JUMP * pitch
    return step >= PITCH_JUMP * pitch


def _restore_spaces(
    text: str, char_boxes: list[Any], chars: list[str], box: np.ndarray, ink: np.ndarray
) -> str:
    """The recogniser (trained mostly on Chinese) often drops the spaces between English
    words: `SEE3/A501`, `BRICKVENEER`. Two signals together restore them: a blank run in
    the pixels wide enough for a space, and a jump in the recogniser's character pitch at
    that run. Neither alone is enough: a narrow `1` leaves as much blank space as a word
    gap, and the character positions are too coarse to locate a gap by themselves."""
    import numpy as np

    if len(chars) != len(char_boxes) or "".join(chars) != text or len(chars) < 3:
        return text
    x0, y0 = int(max(box[:, 0].min(), 0)), int(max(box[:, 1].min(), 0))
    x1, y1 = int(math.ceil(box[:, 0].max())), int(math.ceil(box[:, 1].max()))
    if x1 - x0 < 4 or y1 - y0 < 4 or (y1 - y0) > (x1 - x0):
        return text  # vertical or degenerate: leave as read
    region = ink[y0:y1, x0:x1].copy()
    # Long horizontal strokes (dimension lines, underlines, rules) would bridge every gap.
    region[region.mean(axis=1) > 0.5] = False
    columns = region.any(axis=0)
    inked = np.flatnonzero(columns)
    if inked.size == 0:
        return text
    gaps: list[tuple[float, float]] = []  # (start, end) of blank column runs, crop x
    run_start: int | None = None
    for x in range(int(inked[0]), int(inked[-1]) + 1):
        if not columns[x]:
            if run_start is None:
                run_start = x
        elif run_start is not None:
            gaps.append((x0 + run_start, x0 + x))
            run_start = None
    centres = [float(np.asarray(cb, dtype=float)[:, 0].mean()) for cb in char_boxes]
    # Where the recogniser did emit spaces, their gaps show how wide a space is in this
    # font at this size.
    emitted = [
        end - start
        for i, ch in enumerate(chars)
        if ch == " " and 0 < i < len(chars) - 1
        for start, end in gaps
        if start <= centres[i] <= end or centres[i - 1] < (start + end) / 2 < centres[i + 1]
    ]
    # The detector's box height is a steadier measure of the text size than the ink, which
    # rules, leaders and descenders inflate.
    box_height = min(float(np.linalg.norm(box[0] - box[3])), float(y1 - y0))
    threshold = max(2.0, GAP_FACTOR * box_height)
    if emitted:
        threshold = max(threshold, EMITTED_FACTOR * statistics.median(emitted))
    pitches = [
        centres[i + 1] - centres[i] for i in range(len(chars) - 1) if chars[i] != " " and chars[i + 1] != " "
    ]
    if not pitches:
        return text
    pitch = statistics.median(pitches)
    typical_gap = statistics.median(end - start for start, end in gaps) if gaps else 0.0
    insert_after: set[int] = set()
    for start, end in gaps:
        if end - start < threshold:
            continue
        middle = (start + end) / 2
        for i in range(len(chars) - 1):
            if centres[i] < middle < centres[i + 1]:
                step = centres[i + 1] - centres[i]
                if _is_word_gap(chars[i], chars[i + 1], end - start, threshold, step, pitch, typical_gap):
                    insert_after.add(i)
                break
    if not insert_after:
        return text
    return "".join(c + (" " if i in insert_after else "") for i, c in enumerate(chars))


# -- text normalisation -------------------------------------------------------------------

_CHAR_FIXES = str.maketrans(
    {
        "\u2033": '"',  # double prime
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u3003": '"',
        "\uff02": '"',
        "\u2032": "'",  # prime
        "\u2018": "'",
        "\u2019": "'",
        "\u00b4": "'",
        "`": "'",
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u00d7": "x",
        "\uff1a": ":",
        "\u3001": ",",
        "\uff0c": ",",
        "\u3002": ".",
    }
)
# A degree sign straight after a fraction is a misread inch mark ("3/4°" for 3/4").
_DEGREE_AS_INCH = re.compile(r"(?<=\d/\d)\u00b0|(?<=\d/\d\d)\u00b0|(?<=['\-]\d)\u00b0|(?<=['\-]\d\d)\u00b0")
# An inch mark straight before "-6\"" is a misread foot mark: `7"-0"` is 7'-0".
_INCH_AS_FOOT = re.compile(r"(?<=\d)\"(?= ?- ?\d{1,2}(?: \d{1,2}/\d{1,2})? ?\")")
_DOUBLE_SINGLE = re.compile(r"''")
# Zero read in place of the letter O inside words ("SECTI0N", "0.C.")...
_ZERO_IN_WORD = re.compile(r"(?<=[A-Z])0(?=[A-Z])|\b0(?=\.C\.)")
# ...and the letter O in place of zero inside numbers and sheet ids ("1'-O\"", "A5O1", "O72100").
_O_IN_NUMBER = re.compile(r"(?<=[\d'\-])[Oo](?=[\d\"])|(?<=\d)[Oo](?=\d|\s?mm)|\b[Oo](?=\d{2})")


def _normalise_ocr_text(text: str) -> str:
    text = _DEGREE_AS_INCH.sub('"', text)
    text = unicodedata.normalize("NFKC", text.translate(_CHAR_FIXES)).translate(_CHAR_FIXES)
    text = _DOUBLE_SINGLE.sub('"', text)
    text = _INCH_AS_FOOT.sub("'", text)
    text = _O_IN_NUMBER.sub("0", text)
    text = _ZERO_IN_WORD.sub("O", text)
    return " ".join(text.split())


# -- layout: lines and tables -------------------------------------------------------------


def group_lines(boxes: list[TextBox], ink: Any = None) -> list[TextLine]:
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


def _join(left: TextBox, right: TextBox, ink: Any) -> str:
    """One space when the two boxes are one phrase: close together with no ruled line between."""
    height = min(left.height, right.height)
    if right.x0 - left.x1 > 0.9 * height:
        return "  "
    if ink is not None:
        x0, x1 = int(max(left.x1, 0)), int(math.ceil(max(right.x0, left.x1 + 1)))
        y0, y1 = int(max(max(left.y0, right.y0), 0)), int(math.ceil(min(left.y1, right.y1)))
        band = ink[y0:y1, x0:x1]
        if band.size and y1 - y0 > 2 and (band.mean(axis=0) > 0.7).any():
            return "  "  # a table rule between them
    return " "


@dataclass(frozen=True)
class Table:
    rows: list[list[str]]
    first_line: int
    last_line: int


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


def _ruled(block: list[TextLine], ink: Any) -> bool:
    """Schedules are drawn as grids: most gaps between rows carry a horizontal rule spanning
    the block. Notes and callout stacks that happen to align never do."""
    if ink is None or len(block) < 2:
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


def find_table(lines: list[TextLine], ink: Any) -> Table | None:
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
                    best = Table(rows=rows, first_line=index, last_line=end)
        index = end + 1
    return best


# -- dimensions ---------------------------------------------------------------------------

_INCH_DENOMINATORS = frozenset({2, 4, 8, 16, 32, 64})
_NOT_BEFORE = r"(?<![\d/.'\-])"
_FEET_INCHES = re.compile(
    r"(?<![\d/.])(?P<ft>\d{1,3}) ?' ?(?:- ?)?(?P<inch>\d{1,2})"
    r"(?:(?: |-)?(?P<fn>\d{1,2}) ?/ ?(?P<fd>\d{1,2}))? ?\""
)
_WHOLE_AND_FRACTION = re.compile(
    _NOT_BEFORE + r"(?P<w>\d{1,2})(?: |-)(?P<fn>\d{1,2}) ?/ ?(?P<fd>\d{1,2}) ?\""
)
_FRACTION = re.compile(_NOT_BEFORE + r"(?P<num>\d{1,3}) ?/ ?(?P<fd>\d{1,2}) ?\"")
_DECIMAL_INCHES = re.compile(r"(?<![\d.])(?P<n>\d{1,3}\.\d{1,3}) ?\"")
_METRIC = re.compile(
    r"(?<![\d.,])(?P<n>\d{1,5}(?:[.,]\d{1,3})?) ?(?:(?P<mm>[mM][mM])(?![mM])|(?P<mm2>[mM] [mM])(?![A-Za-z])"
    r"|(?P<u>cm|CM|m|M)(?![A-Za-z]))"
)
_FEET = re.compile(r"(?<![\d/.])(?P<ft>\d{1,3}) ?'(?! ?-? ?\d)")
# A foot mark and a dash make a dimension even when OCR loses the inch mark: `2'-7`.
_FEET_INCHES_NO_INCH_MARK = re.compile(
    r"(?<![\d/.])(?P<ft>\d{1,3}) ?' ?- ?(?P<inch>\d{1,2})(?:(?: |-)(?P<fn>\d{1,2}) ?/ ?(?P<fd>\d{1,2}))?(?![\d/'\"])"
)
# OCR loses the foot mark more often than any other character: `4-11"` is 4'-11".
_FEET_INCHES_NO_MARK = re.compile(
    r"(?<![\d/.'\-])(?P<ft>\d{1,2})-(?P<inch>\d{1,2}?)(?: ?(?P<fn>\d{1,2}) ?/ ?(?P<fd>\d{1,2}))? ?\""
)
_INCHES = re.compile(_NOT_BEFORE + r"(?P<n>\d{1,3}) ?\"")


def _split_improper(num: str, denominator: int) -> tuple[str, str] | None:
    """`35/8"` is `3 5/8"` with the space lost: split the numerator so the fraction is proper."""
    for cut in range(1, len(num)):
        whole, numerator = num[:cut], num[cut:]
        if numerator[0] != "0" and 0 < int(numerator) < denominator:
            return whole, numerator
    return None


def _dimension_label(pattern: re.Pattern[str], match: re.Match[str]) -> str | None:
    if pattern in (_FEET_INCHES, _FEET_INCHES_NO_MARK, _FEET_INCHES_NO_INCH_MARK):
        if int(match["inch"]) > 11:
            return None
        inches = match["inch"]
        if match["fn"]:
            inches = f"{inches} {match['fn']}/{match['fd']}"
        return f"{int(match['ft'])}'-{inches}\""
    if pattern is _WHOLE_AND_FRACTION:
        if int(match["fd"]) not in _INCH_DENOMINATORS or int(match["fn"]) >= int(match["fd"]):
            return None
        return f'{match["w"]} {match["fn"]}/{match["fd"]}"'
    if pattern is _FRACTION:
        denominator = int(match["fd"])
        if denominator not in _INCH_DENOMINATORS:
            return None
        if 0 < int(match["num"]) < denominator:
            return f'{int(match["num"])}/{denominator}"'
        split = _split_improper(match["num"], denominator)
        return f'{split[0]} {split[1]}/{denominator}"' if split else None
    if pattern is _DECIMAL_INCHES:
        return f'{match["n"]}"'
    if pattern is _METRIC:
        unit = "mm" if match["mm"] or match["mm2"] else match["u"].lower()
        if unit == "m" and "." not in match["n"] and "," not in match["n"] and len(match["n"]) > 2:
            return None  # "1200 M" is a misread, not twelve hundred metres
        return f"{match['n'].replace(',', '.')} {unit}"
    if pattern is _FEET:
        return f"{int(match['ft'])}'"
    if pattern is _INCHES:
        return f'{int(match["n"])}"'
    return None


_DIMENSION_PATTERNS = (
    _FEET_INCHES,
    _FEET_INCHES_NO_MARK,
    _FEET_INCHES_NO_INCH_MARK,
    _WHOLE_AND_FRACTION,
    _FRACTION,
    _DECIMAL_INCHES,
    _METRIC,
    _FEET,
    _INCHES,
)


def find_dimensions(text: str) -> list[str]:
    """Dimensions in reading order, in one canonical spelling (`4'-6"`, `3 5/8"`, `1200 mm`).
    Patterns run from most to least specific; a span already claimed is not read twice, so
    the `6"` inside `4'-6"` is not reported on its own."""
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for pattern in _DIMENSION_PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(s < end and start < e for s, e in taken):
                continue
            label = _dimension_label(pattern, match)
            if label is None:
                continue
            taken.append((start, end))
            found.append((start, label))
    found.sort()
    return list(dict.fromkeys(label for _, label in found))


# -- specification callouts ---------------------------------------------------------------

_DIM = r"(?:\d{1,3} ?' ?-? ?\d{1,2}(?: \d{1,2}/\d{1,2})? ?\"|\d{1,2} \d{1,2}/\d{1,2} ?\"|\d{1,3}(?:/\d{1,2}|\.\d+)? ?\"|\d+ ?mm)"
_OC = r"O\. ?C\.?"
_CALLOUT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            rf"#(?P<bar>\d{{1,2}})(?: ?(?P<bars>BARS?))? ?@ ?(?P<dim>{_DIM}) ?{_OC}"
            r"(?: ?(?P<suffix>E\. ?W\.?|T ?& ?B|EACH FACE))?",
            re.I,
        ),
        "rebar",
    ),
    (re.compile(r"TYPE ?(?P<type>[A-Z]{1,2}) ?(?P<product>GWB|GYP\.? ?BD\.?|GYPSUM BOARD)", re.I), "board"),
    (
        re.compile(
            r"(?<!\d)(?P<ga>\d{1,2}) ?GA\.?(?: ?(?P<what>(?:METAL |MTL\.? )?(?:STUDS?|GIRTS?|TRACK|DECK|FRAMING|UNISTRUT|JOISTS?)))?",
            re.I,
        ),
        "gauge",
    ),
    (re.compile(rf"(?P<what>[A-Z][A-Z ./]{{1,30}}?) ?@ ?(?P<dim>{_DIM}) ?{_OC}", re.I), "spacing"),
    (re.compile(rf"(?P<dim>{_DIM}) ?(?P<what>CLR\.?|MIN\.? LAP|CHAMFER|A\.?F\.?F\.?)", re.I), "clearance"),
    (re.compile(r"(?<![\w#])#(?P<bar>\d{1,2})(?![\d/])"), "bar"),
    (re.compile(r"(?<![A-Z0-9])R-(?P<r>\d{1,2})(?![\d.])"), "rvalue"),
    (re.compile(r"\bUL (?:DES\.? ?|DESIGN ?)?(?P<design>[A-Z] ?\d{3})\b", re.I), "ul"),
)


def _tidy(text: str) -> str:
    return " ".join(text.split())


def _callout_label(kind: str, match: re.Match[str]) -> str:
    if kind == "rebar":
        dims = find_dimensions(match["dim"])
        dim = dims[0] if dims else _tidy(match["dim"])
        bars = " BARS" if match["bars"] else ""
        suffix = match["suffix"]
        tail = f" {_tidy(suffix).upper().replace('. ', '.')}" if suffix else ""
        return f"#{match['bar']}{bars} @ {dim} O.C.{tail}"
    if kind == "board":
        product = match["product"].upper().replace(" ", "")
        product = (
            "GYP. BD." if product.startswith("GYP") else ("GYPSUM BOARD" if "GYPSUM" in product else "GWB")
        )
        return f"TYPE {match['type'].upper()} {product}"
    if kind == "gauge":
        what = f" {_tidy(match['what']).upper()}" if match["what"] else ""
        return f"{int(match['ga'])} GA.{what}"
    if kind == "spacing":
        dims = find_dimensions(match["dim"])
        return f"{_tidy(match['what']).upper()} @ {dims[0] if dims else _tidy(match['dim'])} O.C."
    if kind == "clearance":
        dims = find_dimensions(match["dim"])
        return f"{dims[0] if dims else _tidy(match['dim'])} {_tidy(match['what']).upper()}"
    if kind == "bar":
        return f"#{match['bar']}"
    if kind == "rvalue":
        return f"R-{match['r']}"
    return f"UL {match['design'].replace(' ', '').upper()}"


def find_callouts(text: str) -> list[str]:
    """Specification callouts: board types, bar sizes and spacing, gauges, clearances."""
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for pattern, kind in _CALLOUT_PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(s < end and start < e for s, e in taken):
                continue
            taken.append((start, end))
            found.append((start, _callout_label(kind, match)))
    found.sort()
    return list(dict.fromkeys(label for _, label in found))


# -- cross-references ---------------------------------------------------------------------

# The recogniser drops spaces: "SECTION092116" must still read as section 09 21 16.
_GLUED_SPEC = re.compile(
    r"(?i)(SECTION|SPEC\.?|SPECIFIED\s{0,2}IN|PER|DIVISION)(\s{0,2})(\d{2})(\d{2})(\d{2})(?!\d)"
)


# ...and glues lead words to what they point at: "SEESHEETS-301", "REFERTOA3.02",
# "SEEDETAIL5/C-1.05". A space goes back between the lead word and the sheet or callout.
_GLUED_LEAD = re.compile(
    r"(?i)(SEE|SHEETS?|TO|WITH|DETAILS?|DET\.|DTL\.|SECTION|SIM\.?|SIMILAR|PER|IN|AT|ON|REF\.?|AND)"
    r"(?=[A-Z]{1,2}-?\d|\d{1,3} ?/ ?[A-Z])"
)


# ...and glues the next word to the end of a sheet id: "SEE 3/A501FOR HEAD OF WALL".
_GLUED_TAIL = re.compile(
    r"(?<=\d)(FOR|AT|AND|TO|ON|IN|WITH|OF|OR|TYP\.?|SIM\.?|UNO|U\.N\.O\.|EXCEPT|WHERE|BELOW|ABOVE)(?=\W|$)"
)


def _respace(text: str) -> str:
    """Put back the spaces the references patterns need. Works on the whole text, lines
    joined, because a wrapped note often leaves `SECTION` at the end of one line and the
    number at the start of the next."""
    text = _GLUED_SPEC.sub(r"\1\2\3 \4 \5", text)
    return _GLUED_TAIL.sub(r" \1", _GLUED_LEAD.sub(r"\1 ", text))


def _not_a_sheet(reference: str, text: str) -> bool:
    """Sheet-shaped tokens that are something else wherever they occur: `AT40.5 mm` (OCR
    glued `AT` to a measurement, the unit gives it away) and `UL DES. U419` (a fire-rated
    assembly design number)."""
    if not is_sheet_id(reference):
        return False
    pattern = (
        r"(?P<design>(?:\bUL|DES\.|DESIGN) ?(?:NO\.? ?)?)?"
        + re.escape(reference)
        + r"(?P<unit> ?(?:mm|cm|m\b|\"|'))?"
    )
    return all(match["unit"] or match["design"] for match in re.finditer(pattern, text))


def _compact(sheet: str) -> str:
    return re.sub(r"[\s.\-]", "", sheet).upper()


def page_sheet_id(page_name: str) -> str | None:
    """`A-501 Wall Sections` -> `A-501`: the sheet the crop is on."""
    first = page_name.split()[0] if page_name.split() else ""
    return first if first and is_sheet_id(first) else None


def find_cross_references(lines: list[str], own_sheet: str | None) -> list[str]:
    """References to other drawings and specs. A bare sheet id equal to the crop's own sheet
    (the number in its title bubble) is not a cross-reference; details on it are."""
    text = _respace("\n".join(lines))
    references = [r for r in find_references(text) if not _not_a_sheet(r, text)]
    if own_sheet:
        own = _compact(own_sheet)
        references = [r for r in references if not (is_sheet_id(r) and _compact(r) == own)]
    return normalise_references(references)


# -- markdown -----------------------------------------------------------------------------

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


def _letter_height(box: TextBox, ink: Any) -> float:
    """Height of the lettering itself: detector boxes grow with nearby rules and leaders,
    the ink rows that carry most of the strokes do not."""
    if ink is None:
        return box.height
    region = ink[int(max(box.y0, 0)) : int(math.ceil(box.y1)), int(max(box.x0, 0)) : int(math.ceil(box.x1))]
    if region.size == 0:
        return box.height
    counts = region.sum(axis=1)
    counts[counts > 0.5 * region.shape[1]] = 0  # rules and underlines
    if counts.max() == 0:
        return box.height
    rows = [i for i, count in enumerate(counts) if count >= 0.2 * counts.max()]
    return float(rows[-1] - rows[0] + 1)


def _title_line(lines: list[TextLine], ink: Any) -> str | None:
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


def _squash(text: str) -> str:
    return re.sub(r"\W", "", text).upper()


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


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
        title=_title_line(lines, page.ink),
        low_confidence=[(b.text, b.confidence) for b in page.boxes if b.confidence < LOW_CONFIDENCE],
    )


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


class LocalDescriber:
    """Describer for ENRICHER_PROVIDER=local. OCR runs in a worker thread (it is CPU-bound for
    a second or so) so the event loop keeps heartbeating leases meanwhile."""

    name = "local"
    prompt_version = PROMPT_VERSION

    def __init__(self, settings: Settings | None = None) -> None:
        self._max_pixels = getattr(settings, "pass2_max_image_pixels", DEFAULT_MAX_PIXELS)

    async def open(self) -> None:
        """The `local` extra is importable (finding it loads nothing; `warm_up` loads the models)."""
        import importlib.util

        from pgqueue_enricher.settings import ConfigError

        missing = [
            m for m in ("rapidocr_onnxruntime", "cv2", "numpy", "PIL") if not importlib.util.find_spec(m)
        ]
        if missing:
            raise ConfigError(
                f"ENRICHER_PROVIDER=local needs {', '.join(missing)}, not installed: {INSTALL_HINT}"
            )

    async def warm_up(self) -> None:
        """Load the models now, so a missing extra fails at start-up, not on the first pointer."""

        def load() -> None:
            with _engine_lock:
                _get_engine()

        await asyncio.to_thread(load)

    async def describe(self, item: EnrichmentInput) -> EnrichmentOutput:
        started = time.perf_counter()
        page = await asyncio.to_thread(_ocr, item.cropped_image_bytes, self._max_pixels)
        analysis = await asyncio.to_thread(analyse, page, item.page_name)
        markdown = render_markdown(item, analysis)
        return EnrichmentOutput(
            rich_description=markdown,
            cross_references=analysis.references,
            embedding_text=embedding_text(item.pointer_title, item.page_name, item.discipline_name, markdown),
            metadata={
                "provider": "local-ocr",
                "model": "local",
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


# -- embeddings ---------------------------------------------------------------------------

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

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    async def open(self) -> None:
        """Pure Python, no extra and no file: nothing can be missing."""

    async def embed(self, text: str) -> Embedding:
        vector = lexical_vector(text)
        return Embedding(vector=vector, model=self.name, total_tokens=len(text.split()), kind="lexical")

    async def aclose(self) -> None:
        """Nothing to release."""
