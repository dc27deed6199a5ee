"""The held-out crops that bench/local_quality.py measures the local provider on.

They are drawn with the demo's renderer but from other vocabulary, sheet-id styles, fonts,
sizes and layouts than the demo's sample project, which the provider was tuned on.
"""

from __future__ import annotations

import random

from pgqueue_enricher.demo.drawings import (
    RenderedCrop,
    render_detail,
    render_notes,
    render_schedule,
    render_wall_section,
)

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
