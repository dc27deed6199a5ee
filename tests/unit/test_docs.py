"""The documentation stays true to the repository: every relative link leads to a file (and a
heading, when it names one), and the configuration reference lists exactly the settings the
daemon reads, so a setting cannot be added without telling operators about it."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from pgqueue_enricher.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"

# Settings other work in progress adds; their rows may come first. No other name may be
# documented without existing.
DOCUMENTED_AHEAD = frozenset(
    {"PASS2_ON_MODEL_SUBSTITUTION", "DASHBOARD_VIEWER_PASSWORD", "DASHBOARD_ADMIN_PASSWORD"}
)

README_MAX_LINES = 150

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+).*?\1")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
TABLE_ROW_NAME = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|")


def documents() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code, with inline code removed: a link shown as code is an example."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(INLINE_CODE.sub("", line))
    return lines


def links(text: str) -> list[str]:
    found = []
    for line in prose_lines(text):
        for match in LINK.finditer(line):
            found.append(match.group(1) or match.group(2))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\*|_(?=\W)|(?<=\W)_", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = unicodedata.normalize("NFC", text.strip().lower())
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of `path` that leads nowhere (or out of `root`), with why."""
    problems = []
    for target in links(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # http(s), mailto: not this test's business
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if root not in destination.parents and destination != root:
            problems.append(f"{target}: leaves the repository")
        elif not destination.exists():
            problems.append(f"{target}: no such file")
        elif anchor:
            if destination.suffix != ".md":
                problems.append(f"{target}: an anchor into a file that is not markdown")
            elif anchor not in anchors(destination):
                problems.append(f"{target}: no heading with that anchor in {destination.name}")
    return problems


def setting_names(settings: type[Settings]) -> set[str]:
    """The environment variables a Settings class reads (field names or their aliases)."""
    prefix = str(settings.model_config.get("env_prefix") or "")
    names = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias or field.alias
        names.add((alias if isinstance(alias, str) else prefix + field_name).upper())
    return names


def documented_settings(text: str) -> list[str]:
    return [m.group(1) for line in text.splitlines() if (m := TABLE_ROW_NAME.match(line))]


def configuration_mismatch(settings: type[Settings], text: str) -> tuple[set[str], set[str], set[str]]:
    """(settings without a row, rows without a setting, names with more than one row)."""
    rows = documented_settings(text)
    names = setting_names(settings)
    duplicated = {name for name in rows if rows.count(name) > 1}
    return names - set(rows), set(rows) - names - DOCUMENTED_AHEAD, duplicated


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_in_the_docs_leads_to_a_file_and_heading(path: Path) -> None:
    assert broken_links(path) == []


def test_a_link_to_a_missing_file_or_heading_is_reported(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# Index\n\n## Running it\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Probe\n\n[gone](nowhere.md) [bad](README.md#no-such-heading) [good](README.md#running-it)\n"
        "[self](#probe) [out](../elsewhere.md) `[code](ignored.md)`\n\n```\n[fenced](ignored.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page, root=tmp_path) == [
        "nowhere.md: no such file",
        "README.md#no-such-heading: no heading with that anchor in README.md",
        "../elsewhere.md: leaves the repository",
    ]


def test_the_readme_fits_on_a_screen() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_the_configuration_reference_lists_exactly_the_settings() -> None:
    missing, unknown, duplicated = configuration_mismatch(Settings, CONFIGURATION.read_text(encoding="utf-8"))
    assert not missing, f"settings without a row in docs/configuration.md: {sorted(missing)}"
    assert not unknown, f"rows in docs/configuration.md for no setting: {sorted(unknown)}"
    assert not duplicated, f"settings with more than one row: {sorted(duplicated)}"


def test_a_setting_added_without_a_docs_row_is_named() -> None:
    class Grown(Settings):
        pass2_new_knob: int = 1

    missing, unknown, _ = configuration_mismatch(Grown, CONFIGURATION.read_text(encoding="utf-8"))
    assert missing == {"PASS2_NEW_KNOB"}
    assert unknown == set()


def test_a_row_for_no_setting_is_named() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8") + "\n| `PASS2_RETIRED_KNOB` | `1` | gone |\n"
    _, unknown, _ = configuration_mismatch(Settings, text)
    assert unknown == {"PASS2_RETIRED_KNOB"}
