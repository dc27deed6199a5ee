"""Bad inputs against a real database and a running worker.

Every pointer must end `complete` or `failed` with a reason a person can act on, nothing may
stay `processing`, and after each bad input the same worker must still complete a good
pointer: one bad row never takes the daemon down.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from pgqueue_enricher.demo.rows import NewPointer, insert_pointers
from pgqueue_enricher.providers.answer import MAX_DESCRIPTION_BYTES
from pgqueue_enricher.providers.prompt import NO_REFLECTION, PROMPT_VERSION
from pgqueue_enricher.providers.references import normalise_references
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer, png_header, realistic_answer, tiny_png
from tests.support.harness import RowWatcher, running_worker, worker_settings
from tests.support.helpers import CROP, make_page

MB = 1024 * 1024


@pytest.fixture
async def page(conn: asyncpg.Connection) -> uuid.UUID:
    return (await make_page(conn))[1]


async def insert_pointer(
    conn: asyncpg.Connection, page_id: uuid.UUID, title: str = "Bad input", png_path: str | None = CROP
) -> uuid.UUID:
    [pointer] = await insert_pointers(conn, [NewPointer(page_id, title, png_path)])
    return pointer


async def reasons(conn: asyncpg.Connection) -> dict[uuid.UUID, tuple[str, str | None]]:
    rows = await conn.fetch("SELECT id, enrichment_status, enrichment_error FROM pointers")
    return {row["id"]: (row["enrichment_status"], row["enrichment_error"]) for row in rows}


async def a_good_pointer_still_completes(
    conn: asyncpg.Connection, watcher: RowWatcher, page_id: uuid.UUID
) -> None:
    """The proof that the worker survived: the same worker completes a good pointer now."""
    good = await insert_pointer(conn, page_id, title="Good pointer after the bad input")
    assert await watcher.until_final(1, timeout=10) == {str(good): "complete"}
    assert await conn.fetchval("SELECT count(*) FROM pointers WHERE enrichment_status = 'processing'") == 0


@contextlib.asynccontextmanager
async def each_fails_with(
    settings: Settings,
    conn: asyncpg.Connection,
    watcher: RowWatcher,
    page_id: uuid.UUID,
    expected: dict[uuid.UUID, str],
    timeout: float = 10.0,
) -> AsyncIterator[None]:
    """Run a worker until every pointer in `expected` is failed with its text in the reason.
    The body checks what else must hold; then the same worker must complete a good pointer."""
    async with running_worker(settings):
        assert await watcher.until_final(len(expected), timeout=timeout) == {
            str(p): "failed" for p in expected
        }
        found = await reasons(conn)
        for pointer, text in expected.items():
            assert text in (found[pointer][1] or ""), (text, found[pointer][1])
        yield
        await a_good_pointer_still_completes(conn, watcher, page_id)


async def test_a_pointer_without_a_png_path_fails_with_a_reason_and_nothing_is_downloaded(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    page: uuid.UUID,
) -> None:
    bad = {await insert_pointer(conn, page, png_path=path): "no png_path" for path in (None, "", "   ")}
    async with each_fails_with(worker_settings(provider_settings, db_url), conn, watcher, page, bad):
        assert crops.storage.calls == 0 and crops.gemini.calls == 0
    attempts = await conn.fetchval("SELECT max(enrichment_attempts) FROM pointers WHERE png_path IS NULL")
    assert attempts == 1, "a permanent failure is not retried"


async def test_a_missing_crop_object_fails_as_not_found_naming_the_path(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    page: uuid.UUID,
) -> None:
    missing = await insert_pointer(conn, page, png_path="crops/never-uploaded.png")
    expected = {missing: "not found in Supabase Storage: 'project-files/crops/never-uploaded.png'"}
    async with each_fails_with(worker_settings(provider_settings, db_url), conn, watcher, page, expected):
        assert crops.storage.calls == 1 and crops.gemini.calls == 0


async def test_a_crop_that_is_not_an_image_fails_before_any_model_call(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    page: uuid.UUID,
) -> None:
    not_images = {
        "crops/error-page.png": (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "HTML"),
        "crops/error.json": (b'{"statusCode": "500", "error": "internal"}', "JSON"),
        "crops/empty.png": (b"", "empty"),
        "crops/sheet.pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        "crops/truncated.png": (b"\x89PNG\r\n\x1a\n", "truncated"),
        "crops/noise.png": (
            os.urandom(4096).replace(b"\x89", b"\x00").replace(b"\xff", b"\x00"),
            "not a PNG",
        ),
    }
    expected = {}
    for path, (data, kind) in not_images.items():
        crops.storage.put(path, data)
        expected[await insert_pointer(conn, page, png_path=path)] = kind
    async with each_fails_with(worker_settings(provider_settings, db_url), conn, watcher, page, expected):
        assert crops.gemini.calls == 0, "bytes that are not an image are never sent to Gemini"


async def test_a_30_mb_crop_in_storage_is_refused_before_it_is_loaded(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    page: uuid.UUID,
) -> None:
    crops.storage.put("crops/huge.png", tiny_png() + b"\x00" * (30 * MB))
    # The first download declares its length; the second streams without one (chunked).
    crops.storage.script(["ok", "no_length"])
    huge = [await insert_pointer(conn, page, png_path="crops/huge.png") for _ in range(2)]
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=1)
    assert settings.pass2_max_image_bytes == 20 * MB, "the default limit is 20 MB"
    async with running_worker(settings):
        assert await watcher.until_final(2, timeout=15) == {str(p): "failed" for p in huge}
        found = await reasons(conn)
        declared, streamed = (found[p][1] for p in huge)
        assert "is 31," in declared and "PASS2_MAX_IMAGE_BYTES limit of 20,971,520" in declared
        assert "while downloading" in streamed and "PASS2_MAX_IMAGE_BYTES" in streamed
        assert crops.storage.outcomes["no_length"] == 1
        assert crops.gemini.calls == 0
        await a_good_pointer_still_completes(conn, watcher, page)


async def test_crops_in_storage_dir_that_are_too_big_or_escape_the_directory_are_refused(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    fake_server: FakeServer,
    watcher: RowWatcher,
    page: uuid.UUID,
    tmp_path: Path,
) -> None:
    root = tmp_path / "bucket"
    (root / "crops").mkdir(parents=True)
    (root / CROP).write_bytes(tiny_png())
    (root / "crops/huge.png").write_bytes(tiny_png())
    os.truncate(root / "crops/huge.png", 30 * MB)  # sparse: 30 MB on paper, no disk used
    outside = tmp_path / "secret.png"
    outside.write_bytes(tiny_png())
    (root / "crops/link.png").symlink_to(outside)
    bad = {
        "crops/huge.png": "PASS2_MAX_IMAGE_BYTES limit of 20,971,520",
        "crops/link.png": "resolves outside STORAGE_DIR",
        "../secret.png": "'..' segment",
        str(outside): "is absolute",
        "crops": "is a directory",
    }
    expected = {await insert_pointer(conn, page, png_path=path): text for path, text in bad.items()}
    settings = worker_settings(provider_settings, db_url, storage_dir=str(root))
    async with each_fails_with(settings, conn, watcher, page, expected):
        assert fake_server.storage.calls == 0 and fake_server.gemini.calls == 0


async def test_a_png_declaring_50000_by_50000_pixels_is_refused_without_decoding(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    page: uuid.UUID,
) -> None:
    crops.storage.put("crops/bomb.png", png_header(50_000, 50_000))
    crops.storage.put("crops/zero.png", png_header(0, 10))
    bomb = await insert_pointer(conn, page, png_path="crops/bomb.png")
    zero = await insert_pointer(conn, page, png_path="crops/zero.png")
    expected = {bomb: "50,000x50,000 = 2,500,000,000 pixels", zero: "empty size"}
    async with each_fails_with(worker_settings(provider_settings, db_url), conn, watcher, page, expected):
        assert "PASS2_MAX_IMAGE_PIXELS" in (await reasons(conn))[bomb][1]
        assert crops.gemini.calls == 0


async def test_png_paths_that_could_escape_the_bucket_are_refused_and_never_fetched(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    page: uuid.UUID,
) -> None:
    # The URL points at the fake storage itself: had it been fetched, the fake would have
    # recorded the request (and served the crop).
    own_url = f"{crops.base_url}/storage/v1/object/project-files/{CROP}"
    bad = {
        "crops/../../other-bucket/detail.png": "'..' segment",
        "../crops/detail.png": "'..' segment",
        "crops/./detail.png": "segment",
        "crops//detail.png": "empty, '.' or '..' segment",
        "/crops/detail.png": "is absolute",
        "/etc/passwd": "is absolute",
        own_url: "is a URL",
        "file:///etc/passwd": "is a URL",
        "s3:project-files/crops/detail.png": "is a URL",
        "crops\\..\\detail.png": "backslash",
        "crops/detail.png\n": "control characters",
        "crops/" + "a" * 2000 + ".png": "characters long",
    }
    expected = {await insert_pointer(conn, page, png_path=path): text for path, text in bad.items()}
    async with each_fails_with(worker_settings(provider_settings, db_url), conn, watcher, page, expected):
        assert crops.storage.calls == 0 and crops.requests == [], "no path was fetched"


async def test_a_pointer_whose_page_or_discipline_row_is_missing_fails_with_a_reason(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    page: uuid.UUID,
) -> None:
    await conn.execute("ALTER TABLE pointers DROP CONSTRAINT pointers_page_id_fkey")
    await conn.execute("ALTER TABLE pages DROP CONSTRAINT pages_discipline_id_fkey")
    no_page = await insert_pointer(conn, uuid.uuid4(), title="No page")
    orphan_page = await conn.fetchval(
        "INSERT INTO pages (discipline_id, page_name) VALUES (gen_random_uuid(), 'Orphan') RETURNING id"
    )
    no_discipline = await insert_pointer(conn, orphan_page, title="No discipline")
    null_page = await insert_pointer(conn, None, title="NULL page_id")  # type: ignore[arg-type]
    expected = {
        no_page: "page row is missing",
        null_page: "page row is missing",
        no_discipline: "no discipline row",
    }
    async with each_fails_with(worker_settings(provider_settings, db_url), conn, watcher, page, expected):
        assert crops.storage.calls == 0 and crops.gemini.calls == 0


async def test_a_page_without_sheet_reflection_completes_and_the_prompt_says_none_is_available(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    project, null_page = await make_page(conn, page_name="S-101 Framing", sheet_reflection=None)
    _, blank_page = await make_page(
        conn, page_name="S-102 Framing", sheet_reflection=" \n ", project_id=project
    )
    pointers = [
        await insert_pointer(conn, null_page, title="Null reflection"),
        await insert_pointer(conn, blank_page, title="Blank reflection"),
    ]
    async with running_worker(worker_settings(provider_settings, db_url)):
        assert await watcher.until_final(2, timeout=10) == {str(p): "complete" for p in pointers}
        await a_good_pointer_still_completes(conn, watcher, null_page)
    prompts = {r.title: "\n".join(r.texts) for r in crops.gemini.requests}
    for title in ("Null reflection", "Blank reflection"):
        assert NO_REFLECTION in prompts[title]
        assert "Page: S-10" in prompts[title] and "Discipline: Architectural" in prompts[title]


HOSTILE_TITLES = [
    "Detail 4 \"quoted\" and 'single' `back`",
    "Wall; section; ;;",
    "'; DROP TABLE pointers; --",
    "Robert'); DELETE FROM pages WHERE ('1'='1",
    "$1 $2 %s %(title)s {title} \\x00 \\'",
    "Bell\x07 escape\x1b[31m tab\tnewline\ncarriage\rform\x0cend",
    "🏗️ Détail 👷‍♀️ — ✓ 配管図 مقطع",
    "T" * 5000,
]


async def test_hostile_titles_complete_are_stored_intact_and_reach_the_prompt(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    page: uuid.UUID,
) -> None:
    ids = {await insert_pointer(conn, page, title=title): title for title in HOSTILE_TITLES}
    async with running_worker(worker_settings(provider_settings, db_url, pass2_max_concurrent=4)):
        final = await watcher.until_final(len(ids), timeout=15)
        assert final == {str(p): "complete" for p in ids}
        await a_good_pointer_still_completes(conn, watcher, page)
    stored = dict(await conn.fetch("SELECT id, title FROM pointers"))
    prompted = {request.title for request in crops.gemini.requests}
    embedded = [text for request in crops.voyage.requests for text in request.json["input"]]
    for pointer, title in ids.items():
        assert stored[pointer] == title, "stored byte for byte"
        # The prompt carries the title on one line (whitespace runs become one space).
        assert " ".join(title.split()) in prompted
        assert any(text.startswith(title + "\nPage: ") for text in embedded)
    assert await conn.fetchval("SELECT count(*) FROM pages") == 1


async def test_the_database_rejects_a_status_outside_the_four(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    page: uuid.UUID,
) -> None:
    pointer = await insert_pointer(conn, page)
    async with running_worker(worker_settings(provider_settings, db_url)):
        assert await watcher.until_final(1, timeout=10) == {str(pointer): "complete"}
        for bad in ("done", "PENDING", "complete ", "", "canceled"):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute("UPDATE pointers SET enrichment_status = $1 WHERE id = $2", bad, pointer)
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(
                    "INSERT INTO pointers (page_id, title, enrichment_status) VALUES ($1, 'x', $2)", page, bad
                )
        with pytest.raises(asyncpg.NotNullViolationError):
            await conn.execute("UPDATE pointers SET enrichment_status = NULL WHERE id = $1", pointer)
        with pytest.raises(asyncpg.StringDataRightTruncationError):
            await conn.execute("UPDATE pointers SET enrichment_status = $1 WHERE id = $2", "x" * 21, pointer)
        assert (
            await conn.fetchval("SELECT enrichment_status FROM pointers WHERE id = $1", pointer) == "complete"
        )
        assert await conn.fetchval("SELECT count(*) FROM pointers") == 1
        await a_good_pointer_still_completes(conn, watcher, page)


def huge_answer(total_bytes: int) -> str:
    """An answer with every section whose Extracted Content runs to `total_bytes`."""
    head = realistic_answer("Huge")
    line = '- NOTE: 5/8" TYPE X GYPSUM BOARD EACH SIDE, SEE S-101 AND DETAIL 4/A3.01 🏗️\n'
    filler = line * (total_bytes // len(line.encode("utf-8")) + 1)
    return head.replace("## Table Contents", filler + "\n## Table Contents", 1)


async def test_a_2_mb_model_answer_is_stored_bounded_and_the_pointer_completes(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    page: uuid.UUID,
) -> None:
    crops.gemini.script(
        [
            {"kind": "answer", "text": huge_answer(2 * MB)},
            "huge",
            # 2 MB with no section at all: not an answer, so the attempt fails with a reason.
            {"kind": "answer", "text": "I could not read it. " * (2 * MB // 21)},
        ]
    )
    pointers = [await insert_pointer(conn, page, title=f"Huge {n}") for n in range(3)]
    settings = worker_settings(provider_settings, db_url, pass2_max_concurrent=1, pass2_max_attempts=1)
    async with running_worker(settings):
        final = await watcher.until_final(3, timeout=20)
        assert [final[str(p)] for p in pointers] == ["complete", "complete", "failed"]
        await a_good_pointer_still_completes(conn, watcher, page)
    rows = {
        r["id"]: r
        for r in await conn.fetch(
            "SELECT id, description, enrichment_error, enrichment_metadata::text AS meta, "
            "cross_references::text AS refs, octet_length(description) AS size FROM pointers"
        )
    }
    for pointer in pointers[:2]:
        row = rows[pointer]
        meta = json.loads(row["meta"])
        assert row["size"] <= MAX_DESCRIPTION_BYTES + 200, "stored bounded"
        assert row["description"].startswith("## Description")
        assert "[answer truncated by pgqueue-enricher" in row["description"]
        assert meta["description_truncated"] is True and meta["answer_bytes"] > 2_000_000
        refs = json.loads(row["refs"])
        assert "S-101" in refs and all(isinstance(r, str) for r in refs)
    assert "no usable answer" in rows[pointers[2]]["enrichment_error"]
    assert rows[pointers[2]]["size"] == 0, "nothing of the unusable answer was stored"
    assert (
        max(len(t.encode()) for r in crops.voyage.requests for t in r.json["input"])
        < 2 * MAX_DESCRIPTION_BYTES
    )


ODD_CROSS_REFERENCES = (
    """## Description
A detail with odd cross-references.

## Cross-References
- 42
- null
- **None**
- {"sheet": "S-501", "detail": 7}
- [A-201, A-202]
- `S-301`.
-
- \u2022
- 🏗️
- """
    + "Z" * 300
    + """
- S-101
- s-101
  - nested S-102
"""
    + "".join(f"- Note {n}\n" for n in range(60))
    + """
## Notes
None
"""
)


async def test_odd_cross_references_in_an_answer_are_stored_as_distinct_bounded_strings(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    page: uuid.UUID,
) -> None:
    crops.gemini.script([{"kind": "answer", "text": ODD_CROSS_REFERENCES}])
    pointer = await insert_pointer(conn, page, title="Odd references")
    async with running_worker(worker_settings(provider_settings, db_url)):
        assert await watcher.until_final(1, timeout=10) == {str(pointer): "complete"}
        refs = json.loads(
            await conn.fetchval("SELECT cross_references::text FROM pointers WHERE id = $1", pointer)
        )
        await a_good_pointer_still_completes(conn, watcher, page)
    assert isinstance(refs, list) and all(isinstance(r, str) and r for r in refs)
    assert len(refs) <= 50 and all(len(r) <= 120 for r in refs)
    assert len({r.casefold() for r in refs}) == len(refs), "distinct, case-insensitively"
    for expected in ("S-501", "A-201", "A-202", "S-301", "S-101", "S-102"):
        assert expected in refs
    assert not {"null", "None", "**None**", "s-101", "\u2022", "🏗️"} & set(refs)


async def test_a_reused_description_whose_stored_cross_references_are_not_strings_completes_cleanly(
    db_url: str,
    conn: asyncpg.Connection,
    provider_settings: Settings,
    crops: FakeServer,
    watcher: RowWatcher,
    page: uuid.UUID,
) -> None:
    """A checkpoint (a description from an earlier attempt) is reused without paying Gemini
    again; its stored cross_references may have been edited into anything JSON can hold."""
    checkpoint = {"stage": "described", "prompt_version": PROMPT_VERSION, "provider": "gemini"}
    stored = {
        "list of odd items": (
            [1, {"sheet": "S-101"}, None, ["A-201"], True, "A-201", " s-101 ", "S-101"],
            ["A-201", "S-101"],  # strings kept, written in canonical form, duplicates dropped
        ),
        "an object": ({"S-101": True}, []),
        "a string": ("S-101", []),
        "a number": (42, []),
    }
    ids = {}
    for title, (refs, _) in stored.items():
        ids[title] = await conn.fetchval(
            "INSERT INTO pointers (page_id, title, png_path, description, cross_references, "
            "enrichment_metadata) VALUES ($1, $2, $3, '## Description\nReused.', $4::text::jsonb, "
            "$5::text::jsonb) RETURNING id",
            page,
            title,
            CROP,
            json.dumps(refs),
            json.dumps(checkpoint),
        )
    async with running_worker(worker_settings(provider_settings, db_url)):
        final = await watcher.until_final(len(ids), timeout=10)
        assert final == {str(p): "complete" for p in ids.values()}
        assert crops.gemini.calls == 0, "the checkpoint was reused, not paid for again"
        await a_good_pointer_still_completes(conn, watcher, page)
    for title, pointer in ids.items():
        refs = json.loads(
            await conn.fetchval("SELECT cross_references::text FROM pointers WHERE id = $1", pointer)
        )
        assert refs == stored[title][1], title


def test_normalise_references_drops_non_strings_instead_of_inventing_references() -> None:
    class Weird:
        def __str__(self) -> str:
            return "S-999"

    items: list[object] = [
        None, 42, 3.5, True, b"S-101", {"sheet": "S-101"}, ["A-201"], ("A-202",), Weird(),
        float("nan"), "S-101", " - **s-101**. ", "`A-201`;", "N/A", "", "   ", "\u2022", "—", "🏗️", "Q" * 500,
    ]  # fmt: skip
    assert normalise_references(items) == ["S-101", "A-201", "Q" * 120]
    assert normalise_references(iter([f"X-{n:03d}" for n in range(100)])) == [f"X-{n:03d}" for n in range(50)]
    assert normalise_references([]) == []
