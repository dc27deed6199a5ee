"""Repairs what the recogniser reads: puts back the word spaces it drops and maps its look-alike
characters (primes, full-width punctuation, O for 0) to the ones the extraction rules expect."""

from __future__ import annotations

import math
import re
import statistics
import unicodedata
from typing import Any

import numpy as np

# A space is never restored next to these: marks and punctuation attach to their neighbours
# ("4'-6\"", "O.C.", "3/A501"), and a false space there breaks a dimension or a sheet id.
_ATTACH_LEFT = frozenset("'\".,:;)/-\u2033\u2032\u201d\u2019")
_ATTACH_RIGHT = frozenset("(#/-$")


# Word-gap thresholds, tuned on rendered crops in five fonts (the held-out quality bench and
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


def restore_spaces(
    text: str, char_boxes: list[Any], chars: list[str], box: np.ndarray, ink: np.ndarray
) -> str:
    """The recogniser (trained mostly on Chinese) often drops the spaces between English
    words: `SEE3/A501`, `BRICKVENEER`. Two signals together restore them: a blank run in
    the pixels wide enough for a space, and a jump in the recogniser's character pitch at
    that run. Neither alone is enough: a narrow `1` leaves as much blank space as a word
    gap, and the character positions are too coarse to locate a gap by themselves."""
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


def normalise_ocr_text(text: str) -> str:
    text = _DEGREE_AS_INCH.sub('"', text)
    text = unicodedata.normalize("NFKC", text.translate(_CHAR_FIXES)).translate(_CHAR_FIXES)
    text = _DOUBLE_SINGLE.sub('"', text)
    text = _INCH_AS_FOOT.sub("'", text)
    text = _O_IN_NUMBER.sub("0", text)
    text = _ZERO_IN_WORD.sub("O", text)
    return " ".join(text.split())
