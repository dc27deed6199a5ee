"""Extraction rules over OCR'd text: dimensions, specification callouts and cross-references,
each in one canonical spelling so that search and the Gemini path agree on them."""

from __future__ import annotations

import re

from pgqueue_enricher.providers.references import find_references, is_sheet_id, normalise_references

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
