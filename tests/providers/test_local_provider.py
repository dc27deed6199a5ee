"""The offline provider (ENRICHER_PROVIDER=local) on the demo's fixed crops (`demo/sample.py`).

Every describe and embed here runs with outbound sockets cut: the provider's promise is
that it needs no keys and no network, and a test is the only place that promise is kept.
The OCR engine is process-wide, so the module pays for loading it once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from pgqueue_enricher.demo.drawings import RenderedCrop
from pgqueue_enricher.demo.sample import sample_project_crops
from pgqueue_enricher.errors import PermanentFailure
from pgqueue_enricher.providers.local import LexicalEmbedder, LocalDescriber
from pgqueue_enricher.providers.local.describer import OCR_MODULE, import_ocr
from pgqueue_enricher.providers.types import EMBEDDING_DIMENSIONS, EnrichmentInput, EnrichmentOutput
from pgqueue_enricher.settings import ConfigError

needs_ocr = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("rapidocr_onnxruntime", "numpy", "PIL")),
    reason="the `local` extra is not installed",
)
SECTIONS = ("## Description", "## Extracted Content", "## Cross-References", "## Notes")


@contextlib.contextmanager
def network_forbidden() -> Iterator[list[Any]]:
    """Any connect to a non-AF_UNIX address raises, and is recorded in case someone swallows it."""
    attempts: list[Any] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        if self.family != socket.AF_UNIX:
            attempts.append(address)
            raise OSError(f"network access in a local-provider test: {address!r}")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family != socket.AF_UNIX:
            attempts.append(address)
            raise OSError(f"network access in a local-provider test: {address!r}")
        return real_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(address)
        raise OSError(f"network access in a local-provider test: {address!r}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        patch.setattr(socket, "create_connection", create_connection)
        yield attempts


def _crop(title: str) -> tuple[EnrichmentInput, RenderedCrop]:
    sample = next(s for s in sample_project_crops() if s.pointer_title == title)
    item = EnrichmentInput(
        pointer_id=f"test-{title}",
        cropped_image_bytes=sample.crop.png,
        sheet_reflection=sample.sheet_reflection,
        page_name=sample.page_name,
        discipline_name=sample.discipline_display_name,
        pointer_title=sample.pointer_title,
    )
    return item, sample.crop


def section(markdown: str, heading: str) -> str:
    """The body of one `## ` section (including its `### ` subsections)."""
    lines = markdown.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end])


WALL, SCHEDULE, NOTES = "Typical Exterior Wall Section W1", "Door Schedule", "General Notes"


@pytest.fixture(scope="module")
async def described() -> dict[str, Any]:
    """Describe the three fixed crops and embed one answer, all with the network cut."""
    describer = LocalDescriber()
    embedder = LexicalEmbedder()
    outputs: dict[str, Any] = {}
    with network_forbidden() as attempts:
        for title in (WALL, SCHEDULE, NOTES):
            outputs[title] = await describer.describe(_crop(title)[0])
        outputs["embedding"] = await embedder.embed(outputs[WALL].embedding_text)
    await describer.aclose()
    await embedder.aclose()
    outputs["attempts"] = attempts
    return outputs


@needs_ocr
async def test_no_network_is_touched(described: dict[str, Any]) -> None:
    assert described["attempts"] == []
    assert all(isinstance(described[t], EnrichmentOutput) for t in (WALL, SCHEDULE, NOTES))


@needs_ocr
async def test_the_socket_guard_itself_bites() -> None:
    with network_forbidden() as attempts, pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 80), timeout=0.1)
    assert attempts


@needs_ocr
async def test_wall_section_dimensions_and_detail_reference(described: dict[str, Any]) -> None:
    output: EnrichmentOutput = described[WALL]
    content = section(output.rich_description, "## Extracted Content")
    for dimension in ("4'-6\"", '5/8"', "1200 mm", "3'-0\""):
        assert f"- {dimension}" in content, dimension
    assert "Detail 3/A501" in output.cross_references
    assert "- Detail 3/A501" in section(output.rich_description, "## Cross-References")
    assert "TYPE X GWB" in content


@needs_ocr
async def test_notes_spec_section_and_callouts(described: dict[str, Any]) -> None:
    output: EnrichmentOutput = described[NOTES]
    assert "09 21 16" in output.cross_references
    assert "Detail 3/A501" in output.cross_references
    references = section(output.rich_description, "## Cross-References")
    assert "- 09 21 16" in references
    assert '#4 @ 12" O.C.' in section(output.rich_description, "## Extracted Content")


@needs_ocr
async def test_schedule_becomes_a_markdown_table(described: dict[str, Any]) -> None:
    markdown = described[SCHEDULE].rich_description
    table = [line for line in section(markdown, "## Table Contents").splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[:3] == ["MARK", "WIDTH", "HEIGHT"]
    assert set(table[1].replace("|", "").split()) == {"---"}
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert len(rows) == 4 and all(len(row) == len(header) for row in rows)
    assert rows[0][:3] == ["101", "3'-0\"", "7'-0\""]
    assert "Detail 7/A502" in described[SCHEDULE].cross_references


@needs_ocr
async def test_sections_metadata_and_embedding_text(described: dict[str, Any]) -> None:
    for title in (WALL, SCHEDULE, NOTES):
        output: EnrichmentOutput = described[title]
        positions = [output.rich_description.index(heading) for heading in SECTIONS]
        assert positions == sorted(positions)
        assert ("## Table Contents" in output.rich_description) == (title == SCHEDULE)
        notes = section(output.rich_description, "## Notes")
        assert "local OCR" in notes and "not by a vision model" in notes
        assert output.embedding_text.startswith(f"{title}\nPage: ")
        meta = output.metadata
        assert meta["provider"] == "local-ocr" and meta["ocr_engine"] == "rapidocr-onnxruntime"
        assert meta["prompt_version"] == "local-1" and meta["ocr_lines"] > 3 and meta["ocr_ms"] > 0
        json.dumps(meta)


@needs_ocr
async def test_own_sheet_in_the_title_bubble_is_not_a_cross_reference(described: dict[str, Any]) -> None:
    # The W1 bubble reads "1 / A501" and the crop is on A-501: that is where it is, not a link.
    assert "A501" not in described[WALL].cross_references


@pytest.mark.parametrize(
    "payload", [b"", b"<html>502 Bad Gateway</html>", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40]
)
async def test_unreadable_crop_is_a_permanent_rejection(payload: bytes) -> None:
    item = EnrichmentInput("p", payload, None, "A-501 Wall Sections", "Architectural", "Broken")
    with network_forbidden() as attempts, pytest.raises(PermanentFailure) as failure:
        await LocalDescriber().describe(item)
    assert failure.value.kind == "crop_rejected" and not failure.value.transient
    assert attempts == []


@pytest.fixture
def ocr_unloaded(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The OCR module as a fresh process sees it before the first open: no engine loaded yet.
    The process-wide engine comes back afterwards, so later tests do not pay for it again."""
    ocr = import_ocr()
    monkeypatch.setattr(ocr, "_engine", None)
    return ocr


@pytest.mark.parametrize("module", ["rapidocr_onnxruntime", "PIL"])
async def test_open_without_the_local_extra_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    # A None entry in sys.modules makes `import` raise ImportError, as a missing package
    # does; dropping the OCR module from sys.modules makes open() import it afresh.
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, OCR_MODULE, raising=False)
    with pytest.raises(ConfigError) as failure:
        await LocalDescriber().open()
    assert str(failure.value) == (
        f"ENRICHER_PROVIDER=local needs the `local` extra ({module} cannot be imported): "
        'pip install "pgqueue-enricher[local]"'
    )


async def test_describe_without_open_and_without_the_extra_is_a_config_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not a readable image either: the config failure shows the extra is checked first.
    item = EnrichmentInput("p", b"\x89PNG\r\n\x1a\n", None, "A-501 Wall Sections", "Architectural", "Notes")
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    monkeypatch.delitem(sys.modules, OCR_MODULE, raising=False)
    with pytest.raises(PermanentFailure) as failure:
        await LocalDescriber().describe(item)
    assert failure.value.kind == "config" and not failure.value.transient
    assert 'pip install "pgqueue-enricher[local]"' in failure.value.reason


@needs_ocr
@pytest.mark.parametrize("damage", ["missing", "corrupt"])
async def test_open_with_a_broken_model_file_names_the_file(
    monkeypatch: pytest.MonkeyPatch, ocr_unloaded: Any, tmp_path: Any, damage: str
) -> None:
    models = ocr_unloaded.model_files()
    broken = tmp_path / models["rec"].name
    if damage == "corrupt":
        broken.write_bytes(b"not an onnx model")
    monkeypatch.setattr(ocr_unloaded, "model_files", lambda: {**models, "rec": broken})
    with pytest.raises(ConfigError) as failure:
        await LocalDescriber().open()
    message = str(failure.value)
    assert message.startswith(f"The OCR model file {broken} cannot be ")
    assert message.endswith("reinstall it with pip install --force-reinstall --no-deps rapidocr-onnxruntime")
    assert ocr_unloaded._engine is None


@needs_ocr
async def test_describe_reads_a_crop_after_open(ocr_unloaded: Any) -> None:
    describer = LocalDescriber()
    await describer.open()
    assert ocr_unloaded._engine is not None
    item, _ = _crop(WALL)
    with network_forbidden() as attempts:
        output = await describer.describe(item)
    assert attempts == []
    assert "Detail 3/A501" in output.cross_references
    assert "- 4'-6\"" in section(output.rich_description, "## Extracted Content")


def test_importing_the_provider_does_not_load_the_ocr_engine() -> None:
    code = "import sys, pgqueue_enricher.providers.local; print('rapidocr_onnxruntime' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_importing_the_provider_imports_none_of_the_local_extra() -> None:
    heavy = ("rapidocr_onnxruntime", "onnxruntime", "numpy", "cv2", "PIL", OCR_MODULE)
    code = f"import sys, pgqueue_enricher.providers.local; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@needs_ocr
async def test_embedding_of_a_description(described: dict[str, Any]) -> None:
    embedding = described["embedding"]
    assert embedding.model == "lexical-hash-1024" and embedding.kind == "lexical"
    assert len(embedding.vector) == EMBEDDING_DIMENSIONS
    assert math.isclose(math.sqrt(sum(v * v for v in embedding.vector)), 1.0, rel_tol=1e-9)
    assert embedding.total_tokens == len(described[WALL].embedding_text.split())


async def test_embedder_is_deterministic_unit_and_ranks_related_text_higher() -> None:
    embedder = LexicalEmbedder()
    with network_forbidden() as attempts:
        query = await embedder.embed("5/8 inch type X gypsum board on metal studs, rated wall")
        again = await embedder.embed("5/8 inch type X gypsum board on metal studs, rated wall")
        related = await embedder.embed('One-hour rated partition: 5/8" TYPE X GWB each side of metal studs')
        unrelated = await embedder.embed("Panel LP-1A: 20A/1P breakers, #12 wire, lighting circuits 277/480V")
        empty = await embedder.embed("")
    assert attempts == []
    assert query.vector == again.vector
    for vector in (query.vector, related.vector, unrelated.vector, empty.vector):
        assert len(vector) == EMBEDDING_DIMENSIONS
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-9)
    assert _cosine(query.vector, related.vector) > _cosine(query.vector, unrelated.vector) + 0.1
    assert query.total_tokens == 11 and empty.total_tokens == 0


def test_embedding_does_not_depend_on_the_process_hash_seed() -> None:
    """Stored vectors must stay comparable after a restart: no salted `hash()` inside."""
    code = (
        "from pgqueue_enricher.providers.local import lexical_vector; "
        "print(repr([round(v, 12) for v in lexical_vector('SEE 3/A501 TYPE X GWB')[:64]]))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
