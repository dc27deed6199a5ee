"""Cross-reference extraction: what search follows from one drawing to another."""

from __future__ import annotations

import pytest

from pgqueue_enricher.providers.references import find_references, is_sheet_id, normalise_references


@pytest.mark.parametrize("sheet", ["S-101", "A-501", "A3.01", "M-2.1", "A101", "FP-101", "E2.01", "E-601A"])
def test_sheet_ids_in_common_formats_are_found(sheet: str) -> None:
    assert find_references(f"REFER TO {sheet} FOR MORE.") == [sheet]
    assert is_sheet_id(sheet)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SEE DETAIL 4/A3.01", "Detail 4/A3.01"),
        ("Detail 4/A3.01", "Detail 4/A3.01"),
        ("SEE 3/A501", "Detail 3/A501"),
        ("SEE3/A501", "Detail 3/A501"),
        ("DETAIL4/A3.01", "Detail 4/A3.01"),
        ("DET. 5/S-501", "Detail 5/S-501"),
        ("see 2 / a-301", "Detail 2/A-301"),
        ("SECTION 2/A-301", "Section 2/A-301"),
        ("callout 7/A5.2 at the head", "Detail 7/A5.2"),
    ],
)
def test_detail_callouts_are_normalised_including_ocr_dropped_spaces(text: str, expected: str) -> None:
    assert find_references(text) == [expected]


def test_a_sheet_inside_a_detail_callout_is_not_reported_twice() -> None:
    assert find_references("FLASHING PER 4/A3.01, SEE ALSO A3.02") == ["Detail 4/A3.01", "A3.02"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PER SECTION 09 21 16", "09 21 16"),
        ("SPEC 09 21 16.13 GYPSUM", "09 21 16.13"),
        ("SPEC 0921 16", "09 21 16"),
        ("SPEC 09 2116", "09 21 16"),
        ("07 92 00 JOINT SEALANTS", "07 92 00"),
    ],
)
def test_csi_sections_are_found_in_spaced_and_ocr_forms(text: str, expected: str) -> None:
    assert find_references(text) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "092116",  # unspaced: too often just a number
        "4'-6\" CLR",
        "1200 MM O.C.",
        '#4 BARS @ 12" O.C.',
        '5/8" TYPE X GYP BD',
        "R-30 BATT INSULATION",
        "R-13.5 CONT. INSULATION",
        "W12X26 BEAM",
        "L4X4X1/4",
        "P-1 PAINT, CT-2 TILE",
        "ASTM A615 GRADE 60, ASTM C1396",
        "UL U419 ASSEMBLY",
        '2X10 @ 16" O.C.',
        "75 80 85 DB",  # division 75 does not exist
        "SPACING 10 12 14 16 24",
        "",
    ],
)
def test_dimensions_tags_and_standards_are_not_references(text: str) -> None:
    assert find_references(text) == []


@pytest.mark.parametrize("text", ["4'-6\"", "1200 MM", "#4", "R-30", "W12", "P-1", "5/8"])
def test_dimensions_are_not_sheet_ids(text: str) -> None:
    assert not is_sheet_id(text)


def test_references_come_in_reading_order_once_each() -> None:
    text = "SEE S-101. GYP BD PER 09 21 16. FLASHING 4/A3.01. S-101 AGAIN, s-101 lower."
    assert find_references(text) == ["S-101", "09 21 16", "Detail 4/A3.01"]


def test_normalise_drops_non_strings_placeholders_and_markdown() -> None:
    items = [
        "- S-101",
        "* **Detail 4/A3.01**",
        "1. `09 21 16`",
        "None",
        "N/A",
        "   ",
        "",
        42,
        None,
        {"sheet": "A-501"},
        ["A-502"],
        "S-101.",
        "  s-101  ",
        "Structural general notes",
    ]
    assert normalise_references(items) == ["S-101", "Detail 4/A3.01", "09 21 16", "Structural general notes"]


def test_one_reference_in_any_spelling_is_written_once_in_canonical_form() -> None:
    # The database's parse_cross_reference reads these forms back (tests/sql/test_cross_references.py).
    items = ["detail 4/a3.01", "Detail 4/A3.01", "DETAIL  4/A3.01", "SEE 3/A501", "Sheet s-101", "S-101"]
    assert normalise_references(items) == ["Detail 4/A3.01", "Detail 3/A501", "S-101"]
    assert normalise_references(["elev. 1/a-201", "SPEC 0921 16"]) == ["Elevation 1/A-201", "09 21 16"]


def test_an_item_naming_several_references_or_none_is_kept_as_written() -> None:
    assert normalise_references(["S-101 and S-102", "Structural general notes"]) == [
        "S-101 and S-102",
        "Structural general notes",
    ]


def test_normalise_bounds_count_and_length() -> None:
    many = [f"A-{100 + i}" for i in range(80)]
    assert normalise_references(many) == many[:50]
    assert normalise_references(many, limit=3) == many[:3]
    long = "X" * 500
    assert normalise_references([long]) == ["X" * 120]
    assert normalise_references([long], max_len=10) == ["X" * 10]
