"""The demo's sample project: three sheets of the Riverside Clinic set and their twelve crops.

The sheet reflections and drawn texts are written to read like a real set, so that the printed
pointer shows what an enriched row looks like; the local provider's tests use the same crops.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgqueue_enricher.demo.drawings import (
    RenderedCrop,
    render_detail,
    render_notes,
    render_schedule,
    render_wall_section,
)


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
