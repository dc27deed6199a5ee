"""How much of a drawing the local OCR provider actually reads, on crops it was not tuned on.

Renders a held-out set of synthetic crops (other texts, fonts, sizes and layouts than the
demo's), runs `LocalDescriber` on each, and measures recall against the renderer's ground
truth: dimensions listed under `### Dimensions`, and cross-references in `cross_references`.
Exits 1 when either recall is under the target, so it can gate changes to the extraction.

    .venv/bin/python bench/local_quality.py [--count 40] [--seed 7] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.quality_set import heldout_crops  # noqa: E402
from pgqueue_enricher.demo.drawings import RenderedCrop  # noqa: E402
from pgqueue_enricher.providers.local import LocalDescriber  # noqa: E402
from pgqueue_enricher.providers.types import EnrichmentInput  # noqa: E402

TARGET = 0.90
_SPACE_NOT_BETWEEN_DIGITS = re.compile(r"(?<!\d) | (?!\d)")


def match_key(text: str) -> str:
    """Case-insensitive, whitespace squeezed; a space only counts between two digits, where it
    carries meaning (`3 5/8"` is not `35/8"`), so `1200MM` and `1200 mm` are the same answer."""
    squeezed = " ".join(text.lower().split())
    return _SPACE_NOT_BETWEEN_DIGITS.sub("", squeezed)


def listed_dimensions(markdown: str) -> list[str]:
    """The bullets of the `### Dimensions` subsection, unescaped."""
    items: list[str] = []
    inside = False
    for line in markdown.splitlines():
        if line.startswith("#"):
            inside = line.strip() == "### Dimensions"
            continue
        if inside and line.startswith("- "):
            items.append(re.sub(r"\\(.)", r"\1", line[2:]))
    return items


class Tally:
    def __init__(self, label: str) -> None:
        self.label = label
        self.expected = 0
        self.found = 0
        self.extra = 0
        self.misses: list[tuple[str, str, list[str]]] = []

    def add(self, crop: RenderedCrop, truth: list[str], answer: list[str]) -> None:
        keys = {match_key(a) for a in answer}
        truth_keys = {match_key(t) for t in truth}
        for item in truth:
            self.expected += 1
            if match_key(item) in keys:
                self.found += 1
            else:
                self.misses.append((crop.title, item, answer))
        self.extra += len(keys - truth_keys)

    @property
    def recall(self) -> float:
        return self.found / self.expected if self.expected else 1.0

    def report(self, show: int) -> str:
        lines = [
            f"{self.label:<17} recall {self.recall:6.1%}  ({self.found}/{self.expected}; "
            f"{self.extra} extra items not in the ground truth)"
        ]
        for title, item, answer in self.misses[:show]:
            lines.append(f"    miss {item!r:<22} in {title!r}; got {answer}")
        return "\n".join(lines)


async def run(count: int, seed: int, verbose: bool) -> int:
    crops = heldout_crops(seed=seed, count=count)
    describer = LocalDescriber()
    started = time.perf_counter()
    await describer.open()
    dimensions, references = Tally("dimensions"), Tally("cross-references")
    ocr_ms = 0.0
    for index, crop in enumerate(crops):
        output = await describer.describe(
            EnrichmentInput(
                pointer_id=f"bench-{index}",
                cropped_image_bytes=crop.png,
                sheet_reflection=None,
                page_name="Held-out set",
                discipline_name="Bench",
                pointer_title=crop.title.title(),
            )
        )
        ocr_ms += output.metadata["ocr_ms"]
        dimensions.add(crop, crop.dimensions, listed_dimensions(output.rich_description))
        references.add(crop, crop.references, output.cross_references)
        if verbose:
            print(f"--- {index} {crop.title}\n{output.rich_description}")
    await describer.aclose()
    elapsed = time.perf_counter() - started

    show = 1000 if verbose else 8
    print(f"local provider quality on {len(crops)} held-out crops (seed {seed})")
    print(dimensions.report(show))
    print(references.report(show))
    print(f"runtime {elapsed:.1f} s, OCR {ocr_ms / 1000:.1f} s, {elapsed / len(crops):.2f} s per crop")
    passed = dimensions.recall >= TARGET and references.recall >= TARGET
    print(f"target {TARGET:.0%}: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=40, help="held-out crops to render (default 40)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--verbose", action="store_true", help="print every answer and every miss")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.count, args.seed, args.verbose)))


if __name__ == "__main__":
    main()
