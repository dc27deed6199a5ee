"""A held-out set of cross-references as drawn on real sheets, with what they should parse and
resolve to, for bench/references_quality.py.

Written by hand from the forms plan sets use (callout bubbles, SEE/REF notes, sheet and spec
references, door and window tags), with the noise around them (SIM., TYP., trailing prose)
and the slips OCR makes (a letter O for a zero). None of these strings is in the tests.

The synthetic project has 40 sheets in the host's spellings; some detail pointers sit on
them. A reference's expected target is the sheet (and detail) a reader would open, or None
when the project has no such sheet; a twin project holds every sheet too, so a link that
crosses projects is counted as wrong.
"""

from __future__ import annotations

from typing import NamedTuple


class Expected(NamedTuple):
    text: str
    kind: str
    detail: str | None
    sheet: str | None
    spec_section: str | None
    target_page: str | None  # page_name of the sheet it should lead to, None: no such page
    target_pointer: str | None  # title of the detail pointer it should lead to


SHEETS = [
    "G-001", "G-002", "C-101", "C-102", "L-101", "S-001", "S-101", "S-102", "S-201", "S-301",
    "S-501", "A-001", "A-101", "A-102", "A-103", "A-201", "A-202", "A-301", "A-302", "A3.01",
    "A3.02", "A-401", "A-501", "A-502", "A-601", "A-701", "M-101", "M-201", "M-2.1", "P-101",
    "P-201", "E-101", "E-201", "E-601A", "FP-101", "FA-101", "T-101", "ID-101", "D-101", "AD-101",
]  # fmt: skip

# Pointers on the sheets, by title: the targets of detail callouts.
DETAIL_POINTERS = {
    "A3.01": ["Detail 4 - Wall section", "Detail 5 - Parapet", "6 - SILL"],
    "A-501": ["1 - HEAD DETAIL", "2 - JAMB DETAIL", "3 - SILL DETAIL", "12/A-501"],
    "S-501": ["Detail 1", "Detail 2", "DETAIL 7 - BASE PLATE"],
    "A-301": ["SECTION A", "Section B - Stair", "Wall section 3"],
    "S-301": ["SECTION B", "Section C"],
    "A-201": ["ELEVATION 1 - NORTH", "Elevation 2 - South"],
    "A3.02": ["Detail 7", "8: CURB"],
    "A-601": ["Detail 10 - Door head", "11 - DOOR JAMB"],
}


def sheet(text: str, sheet_id: str, page: str | None) -> Expected:
    return Expected(text, "sheet", None, sheet_id, None, page, None)


def detail(
    text: str, number: str, sheet_id: str, page: str | None, pointer: str | None, kind: str = "detail"
) -> Expected:
    return Expected(text, kind, number, sheet_id, None, page, pointer)


def spec(text: str, section: str) -> Expected:
    return Expected(text, "spec_section", None, None, section, None, None)


def tag(text: str, mark: str) -> Expected:
    return Expected(text, "tag", mark, None, None, None, None)


def unknown(text: str) -> Expected:
    return Expected(text, "unknown", None, None, None, None, None)


REFERENCES: list[Expected] = [
    # Sheet ids in the host's own spelling and in the others a plan set uses.
    sheet("S-101", "S-101", "S-101"),
    sheet("S101", "S101", "S-101"),
    sheet("S 101", "S 101", "S-101"),
    sheet("s-101", "S-101", "S-101"),
    sheet("A-101", "A-101", "A-101"),
    sheet("A101", "A101", "A-101"),
    sheet("A-102", "A-102", "A-102"),
    sheet("A103", "A103", "A-103"),
    sheet("G-001", "G-001", "G-001"),
    sheet("G001", "G001", "G-001"),
    sheet("C-101", "C-101", "C-101"),
    sheet("C102", "C102", "C-102"),
    sheet("L-101", "L-101", "L-101"),
    sheet("S-001", "S-001", "S-001"),
    sheet("S-102", "S-102", "S-102"),
    sheet("S-201", "S-201", "S-201"),
    sheet("A-201", "A-201", "A-201"),
    sheet("A-202", "A-202", "A-202"),
    sheet("A-301", "A-301", "A-301"),
    sheet("A301", "A301", "A-301"),
    sheet("A3.01", "A3.01", "A3.01"),
    sheet("A-3.01", "A-3.01", "A3.01"),
    sheet("A3.02", "A3.02", "A3.02"),
    sheet("A-401", "A-401", "A-401"),
    sheet("A-501", "A-501", "A-501"),
    sheet("A 501", "A 501", "A-501"),
    sheet("A-601", "A-601", "A-601"),
    sheet("A-701", "A-701", "A-701"),
    sheet("M-101", "M-101", "M-101"),
    sheet("M201", "M201", "M-201"),
    sheet("M-2.1", "M-2.1", "M-2.1"),
    sheet("P-101", "P-101", "P-101"),
    sheet("P-201", "P-201", "P-201"),
    sheet("E-101", "E-101", "E-101"),
    sheet("E-201", "E-201", "E-201"),
    sheet("E-601A", "E-601A", "E-601A"),
    sheet("FP-101", "FP-101", "FP-101"),
    sheet("FA101", "FA101", "FA-101"),
    sheet("T-101", "T-101", "T-101"),
    sheet("ID-101", "ID-101", "ID-101"),
    sheet("D-101", "D-101", "D-101"),
    sheet("AD-101", "AD-101", "AD-101"),
    # Sheets with the words drawings put around them.
    sheet("SEE SHEET E-201", "E-201", "E-201"),
    sheet("REF. E-201", "E-201", "E-201"),
    sheet("SEE S-201 FOR FRAMING", "S-201", "S-201"),
    sheet("REFER TO A-401", "A-401", "A-401"),
    sheet("SEE DWG M-101", "M-101", "M-101"),
    sheet("SHT. P-201", "P-201", "P-201"),
    sheet("SEE SHEET A-601 FOR DOOR SCHEDULE", "A-601", "A-601"),
    sheet("PER C-101", "C-101", "C-101"),
    sheet("SEE SHEET G-002 GENERAL NOTES", "G-002", "G-002"),
    sheet("SEE ELECTRICAL E-101", "E-101", "E-101"),
    sheet("TYP. SEE S-001", "S-001", "S-001"),
    sheet("SEE L-101 FOR PLANTING", "L-101", "L-101"),
    sheet("REFER TO SHEET T-101", "T-101", "T-101"),
    sheet("SEE A-102.", "A-102", "A-102"),
    sheet("(SEE A-103)", "A-103", "A-103"),
    sheet("SEE M-2.1 FOR DUCT ROUTING", "M-2.1", "M-2.1"),
    sheet("COORD. W/ FP-101", "FP-101", "FP-101"),
    # Sheets the project does not have (yet): parsed, never linked.
    sheet("A-999", "A-999", None),
    sheet("S-401", "S-401", None),
    sheet("SEE SHEET M-301", "M-301", None),
    sheet("E-701", "E-701", None),
    sheet("A3.05", "A3.05", None),
    sheet("C-501", "C-501", None),
    sheet("P-301", "P-301", None),
    sheet("REF. A-801", "A-801", None),
    # A dotted number is not the undotted one: A3.1 is neither A3.01 nor A-301.
    sheet("A3.1", "A3.1", None),
    # OCR slips: a letter O for a zero inside the number.
    sheet("A5O1", "A501", "A-501"),
    sheet("S-1O1", "S-101", "S-101"),
    sheet("E-2O1", "E-201", "E-201"),
    sheet("SEE A-1O2", "A-102", "A-102"),
    sheet("M-1O1", "M-101", "M-101"),
    sheet("G-0O1", "G-001", "G-001"),
    sheet("A3.O1", "A3.01", "A3.01"),
    # Detail callouts.
    detail("SEE 3/A501", "3", "A501", "A-501", "3 - SILL DETAIL"),
    detail("3/A-501", "3", "A-501", "A-501", "3 - SILL DETAIL"),
    detail("1/A-501", "1", "A-501", "A-501", "1 - HEAD DETAIL"),
    detail("2/A501", "2", "A501", "A-501", "2 - JAMB DETAIL"),
    detail("12/A-501", "12", "A-501", "A-501", "12/A-501"),
    detail("DETAIL 4 / A3.01", "4", "A3.01", "A3.01", "Detail 4 - Wall section"),
    detail("4/A3.01 SIM.", "4", "A3.01", "A3.01", "Detail 4 - Wall section"),
    detail("Detail 4/A3.01", "4", "A3.01", "A3.01", "Detail 4 - Wall section"),
    detail("DETAIL 5/A3.01", "5", "A3.01", "A3.01", "Detail 5 - Parapet"),
    detail("5/A-3.01", "5", "A-3.01", "A3.01", "Detail 5 - Parapet"),
    detail("SEE 6/A3.01 TYP.", "6", "A3.01", "A3.01", "6 - SILL"),
    detail("DET. 1/S-501", "1", "S-501", "S-501", "Detail 1"),
    detail("DTL 2/S501", "2", "S501", "S-501", "Detail 2"),
    detail("7/S-501", "7", "S-501", "S-501", "DETAIL 7 - BASE PLATE"),
    detail("SEE DETAIL 7/A3.02", "7", "A3.02", "A3.02", "Detail 7"),
    detail("8/A3.02", "8", "A3.02", "A3.02", "8: CURB"),
    detail("DETAIL 10/A-601", "10", "A-601", "A-601", "Detail 10 - Door head"),
    detail("11/A601 SIM", "11", "A601", "A-601", "11 - DOOR JAMB"),
    detail("SEE 9/A-501", "9", "A-501", "A-501", None),  # the sheet exists, the detail does not
    detail("2/S-102", "2", "S-102", "S-102", None),
    detail("DETAIL 4 ON SHEET A3.01", "4", "A3.01", "A3.01", "Detail 4 - Wall section"),
    detail("DETAIL 3, SHEET A-501", "3", "A-501", "A-501", "3 - SILL DETAIL"),
    detail("SEE3/A501", "3", "A501", "A-501", "3 - SILL DETAIL"),
    detail("DETAIL4/A3.01", "4", "A3.01", "A3.01", "Detail 4 - Wall section"),
    detail("see 2 / a-501", "2", "A-501", "A-501", "2 - JAMB DETAIL"),
    detail("4/A3.O1", "4", "A3.01", "A3.01", "Detail 4 - Wall section"),
    detail("SEE 1/A5O1", "1", "A501", "A-501", "1 - HEAD DETAIL"),
    detail("2/S-5O1", "2", "S-501", "S-501", "Detail 2"),
    detail("REF 1/S-501 FOR ANCHORAGE", "1", "S-501", "S-501", "Detail 1"),
    detail("3/A-999", "3", "A-999", None, None),
    detail("DETAIL 2/A-702", "2", "A-702", None, None),
    detail("5/A3.05", "5", "A3.05", None, None),
    detail("A1/A-501", "A1", "A-501", "A-501", None),
    # Section cuts and elevations.
    detail("SECTION B/S-301", "B", "S-301", "S-301", "SECTION B", kind="section"),
    detail("SECTION C/S-301", "C", "S-301", "S-301", "Section C", kind="section"),
    detail("Section 2/A-301", "2", "A-301", "A-301", None, kind="section"),
    detail("SECTION A/A-301", "A", "A-301", "A-301", "SECTION A", kind="section"),
    detail("SECT. B/A301", "B", "A301", "A-301", "Section B - Stair", kind="section"),
    detail("SEC 3/A-301", "3", "A-301", "A-301", "Wall section 3", kind="section"),
    detail("SEE SECTION 3/A-301", "3", "A-301", "A-301", "Wall section 3", kind="section"),
    detail("SECTION A/A-302", "A", "A-302", "A-302", None, kind="section"),
    detail("SECTION D/S-301", "D", "S-301", "S-301", None, kind="section"),
    detail("SECTION 1/A-303", "1", "A-303", None, None, kind="section"),
    detail("Elevation 1/A-201", "1", "A-201", "A-201", "ELEVATION 1 - NORTH", kind="elevation"),
    detail("ELEV. 2/A201", "2", "A201", "A-201", "Elevation 2 - South", kind="elevation"),
    detail("ELEVATION 1 / A-201", "1", "A-201", "A-201", "ELEVATION 1 - NORTH", kind="elevation"),
    detail("ELEV 3/A-202", "3", "A-202", "A-202", None, kind="elevation"),
    detail("SEE ELEV. 2/A-201 SIM.", "2", "A-201", "A-201", "Elevation 2 - South", kind="elevation"),
    # Specification sections.
    spec("SPEC SECTION 09 21 16", "09 21 16"),
    spec("09 21 16", "09 21 16"),
    spec("092116", "09 21 16"),
    spec("SECTION 09 21 16.13", "09 21 16.13"),
    spec("07 92 00", "07 92 00"),
    spec("SEE SPEC 07 92 00 JOINT SEALANTS", "07 92 00"),
    spec("08 71 00 DOOR HARDWARE", "08 71 00"),
    spec("SPEC 0921 16", "09 21 16"),
    spec("SPEC. SECT. 03 30 00", "03 30 00"),
    spec("PER 05 12 00", "05 12 00"),
    spec("REF. SPECIFICATION 07 21 00", "07 21 00"),
    spec("04 20 00", "04 20 00"),
    spec("SECTION 06 10 00 ROUGH CARPENTRY", "06 10 00"),
    spec("23 05 93", "23 05 93"),
    spec("26 05 19", "26 05 19"),
    spec("08 11 13.", "08 11 13"),
    spec("SEE SPECS 07 62 00", "07 62 00"),
    spec("031000", "03 10 00"),
    # Door and window tags, only when the text says so.
    tag("DOOR D-101", "D-101"),
    tag("DOOR 101", "101"),
    tag("DOOR TAG 114A", "114A"),
    tag("WINDOW TYPE W3", "W3"),
    tag("WINDOW W-2", "W-2"),
    tag("DOOR NO. 205", "205"),
    tag("SEE DOOR 112 HARDWARE", "112"),
    tag("WINDOW TYPE A1", "A1"),
    # Notes that point nowhere one can follow.
    unknown("TYP. SEE STRUCT."),
    unknown("SEE ARCH."),
    unknown("SEE STRUCTURAL DRAWINGS"),
    unknown("REFER TO SPECIFICATIONS"),
    unknown("COORD. W/ ARCH"),
    unknown("SEE MECH. DWGS"),
    unknown("Structural general notes"),
    unknown("SIM."),
    unknown("TYP."),
    unknown("N.I.C."),
    unknown("SEE DOOR SCHEDULE"),
    unknown("VERIFY IN FIELD"),
    unknown("ASTM A615"),
    unknown("ASTM C1396"),
    unknown("UL U419"),
    unknown("R-13.5"),
    unknown("R-30 BATT"),
    unknown("W12X26"),
    unknown('5/8" TYPE X GYP BD'),
    unknown('#4 @ 12" O.C.'),
    unknown("2X10 @ 16 O.C."),
    unknown("P-1 PAINT"),
    unknown("CT-2"),
    unknown("1200 MM"),
    unknown("75 80 85"),
    unknown("ROOM 101"),
    unknown("EQ."),
    unknown(""),
]
