"""Cross-references between drawings: sheet ids, detail callouts and CSI spec sections.

Search (Brain Mode) follows `pointers.cross_references` from one drawing to another, so a
false positive sends a reader to a sheet that does not exist, and a variant spelling of the
same reference splits one link into two. The patterns are therefore conservative (a sheet
id needs three digits or a dotted number, so finish tags like `P-1`, beam sizes like `W12`
and R-values like `R-30` are not sheets) and tolerant of what OCR and models do to
spacing (`SEE3/A501`, `0921 16`).

Every reference is written in one canonical form, the one the database's
`parse_cross_reference` reads back (sql/definitions/cross_references.sql): `Detail 3/A501`,
`Section 2/A-301`, `Elevation 1/A-201`, a sheet as its id upper-cased with its own
separators (`A-501`, `A3.01`), a specification section as `09 21 16`.

Used by the Gemini answer reader and by the local OCR provider.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Designations of standards bodies: "ASTM A615" or "UL U419" are not sheets.
_STANDARDS = r"(?:ASTM|ANSI|AASHTO|ACI|AISC|AWS|CSA|ISO|EN|DIN|BS|UL|FM|NFPA|IBC|IEEE)"

_SHEET_NUMBER = r"(?:\d{3,4}|\d{1,2}\.\d{1,3})"
_SHEET = rf"[A-Z]{{1,2}}-?{_SHEET_NUMBER}[A-Z]?"  # optional revision letter: E-601A
# Inside a detail callout the sheet part is unambiguous, so short numbers are accepted.
_CALLOUT_SHEET = r"[A-Z]{1,2}-?\d{1,4}(?:\.\d{1,3})?"

_SHEET_RE = re.compile(rf"(?<![A-Za-z0-9.\-])(?P<sheet>{_SHEET})(?![A-Za-z0-9]|[.\-/]\d)")
_STANDARD_BEFORE = re.compile(rf"\b{_STANDARDS}[\s-]*$")
_SHEET_FULL_RE = re.compile(rf"{_SHEET}")

_KEYWORD_DETAIL_RE = re.compile(
    rf"""
    (?<![A-Za-z0-9])
    (?P<keyword>DETAILS?|DET\.?|DTL\.?|SEE|REF\.?|SECTION|SECT\.?|SEC\.?|ELEVATION|ELEV\.?)\s*
    (?P<id>[A-Z]?\d{{1,3}}[A-Z]?|[A-Z])
    \s*/\s*
    (?P<sheet>{_CALLOUT_SHEET})
    (?![A-Za-z0-9]|[.\-]\d)
    """,
    re.VERBOSE | re.IGNORECASE,
)
# Without a keyword only the callout-bubble form "4/A3.01" counts, in capitals, so that
# fractions ("5/8") and prose ("and/or") stay out.
_BARE_DETAIL_RE = re.compile(
    rf"(?<![A-Za-z0-9/.\-])(?P<id>\d{{1,3}}|[A-Z]\d{{1,2}})\s*/\s*(?P<sheet>{_CALLOUT_SHEET})"
    r"(?![A-Za-z0-9]|[.\-]\d)"
)

_CSI_RE = re.compile(
    # Not inside a longer run of numbers ("10 12 14 16" in a table is not a section).
    r"(?<![\d.'\"/\-])(?<!\d )(?P<a>\d{2})(?P<s1> ?)(?P<b>\d{2})(?P<s2> ?)(?P<c>\d{2})"
    r"(?:\.(?P<d>\d{2}))?(?![\d'\"/]|\.\d| \d)"
)

_BULLET = re.compile(r"^\s*(?:[-*+\u2022\u00b7>]+|\d{1,3}[.)])\s+")
_EMPHASIS = re.compile(r"(\*\*|__|`)")
_EMPTY_WORDS = frozenset(
    {"", "none", "n/a", "na", "nil", "null", "-", "--", "none found", "no cross-references", "not applicable"}
)


def is_sheet_id(text: str) -> bool:
    """Whether `text` on its own is a sheet id (`S-101`, `A3.01`, `M-2.1`), not a dimension or tag."""
    text = text.strip()
    return bool(_SHEET_FULL_RE.fullmatch(text)) and not _is_r_value(text)


def _is_r_value(sheet: str) -> bool:
    # "R-13.5" insulation values share the shape of a dotted sheet number.
    return sheet.upper().startswith("R") and "." in sheet and len(sheet.split(".", 1)[0]) <= 4


def _detail_label(match: re.Match[str]) -> str:
    keyword = (match.groupdict().get("keyword") or "").upper()
    number = match["id"].upper()
    sheet = match["sheet"].upper()
    label = (
        "Section" if keyword.startswith("SEC") else "Elevation" if keyword.startswith("ELEV") else "Detail"
    )
    return f"{label} {number}/{sheet}"


def find_references(text: str) -> list[str]:
    """Every cross-reference in `text`, in reading order, each once, in canonical form.

    A sheet id that is part of a detail callout (`4/A3.01`) is reported only as the detail,
    so one callout is one reference.
    """
    return normalise_references(_find(text))


def _find(text: str) -> list[str]:
    """The canonical labels of the references in `text`, in reading order, repeats included."""
    if not text:
        return []
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []

    def overlaps(span: tuple[int, int]) -> bool:
        return any(start < span[1] and span[0] < end for start, end in taken)

    for pattern in (_KEYWORD_DETAIL_RE, _BARE_DETAIL_RE):
        for match in pattern.finditer(text):
            if not overlaps(match.span()):
                found.append((match.start(), _detail_label(match)))
                taken.append(match.span())

    for match in _SHEET_RE.finditer(text):
        if overlaps(match.span()) or _is_r_value(match["sheet"]):
            continue
        if _STANDARD_BEFORE.search(text, max(0, match.start() - 12), match.start()):
            continue
        found.append((match.start(), match["sheet"].upper()))

    for match in _CSI_RE.finditer(text):
        if overlaps(match.span()):
            continue
        if not (match["s1"] or match["s2"]):  # "092116" is too often a plain number
            continue
        if int(match["a"]) > 49:  # MasterFormat divisions are 00-49
            continue
        label = f"{match['a']} {match['b']} {match['c']}"
        if match["d"]:
            label += f".{match['d']}"
        found.append((match.start(), label))

    found.sort(key=lambda item: item[0])
    return [label for _, label in found]


def canonical_reference(item: str) -> str:
    """`item` in canonical form when it is one reference ("see detail 4/a3.01" becomes
    `Detail 4/A3.01`, "Sheet s-101" becomes `S-101`); otherwise `item` unchanged.

    An item naming several references, or none ("Structural general notes"), is kept as the
    model wrote it: choosing one of several would drop the others.
    """
    # Sheet ids are matched in capitals only (in prose, lower case is rarely a sheet); an item
    # of a model's list is meant as a reference, so its lower-case spelling counts too.
    found = list(dict.fromkeys(_find(item) or _find(item.upper())))
    return found[0] if len(found) == 1 else item


def _clean(item: str, max_len: int) -> str:
    text = _BULLET.sub("", item.strip())
    text = _EMPHASIS.sub("", text)
    text = " ".join(text.split())
    text = text.strip().rstrip(".,;:").strip()
    return text[:max_len].rstrip()


def normalise_references(items: Iterable[object], limit: int = 50, max_len: int = 120) -> list[str]:
    """Distinct, tidy reference strings, at most `limit` of them, each at most `max_len` chars.

    Non-strings are dropped rather than converted: a number or a nested object in a model's
    list is a malformed entry, and `str()` of it would only invent a reference. Bullets,
    markdown emphasis, trailing punctuation and placeholder words ("None", "N/A") are
    removed, and so are items with no letter or digit; an item that is one reference is
    written in canonical form (`canonical_reference`); duplicates are found
    case-insensitively, in order of first appearance; over-long entries are cut to `max_len`.
    """
    result: list[str] = []
    seen: set[str] = set()
    for item in items:
        if len(result) >= limit:
            break
        if not isinstance(item, str):
            continue
        text = _clean(canonical_reference(_clean(item, max_len)), max_len)
        key = text.casefold()
        # An item with no letter or digit ("•", "—", an emoji) cannot name a sheet or section.
        if key in _EMPTY_WORDS or key in seen or not any(ch.isalnum() for ch in text):
            continue
        seen.add(key)
        result.append(text)
    return result
