"""The built wheel is a complete install: it migrates and drains with no checkout around it.

The wheel is installed into an environment of its own, run from a folder that is not the
checkout. Its dependencies are borrowed from the test environment through a plain path entry
(which puts the directory on sys.path without running its .pth files, so the editable install
of the checkout stays inactive); the package itself can only come from the wheel.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import asyncpg
import pytest

from tests.support.harness import settings_env, worker_settings
from tests.support.helpers import CROP, insert_pointers, make_page

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy, so that setuptools' build/ and egg-info never land in the checkout.
    source = tmp_path_factory.mktemp("source") / "tree"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".demo"),
    )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=240,
    )
    (built,) = out.glob("pgqueue_enricher-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh environment holding the wheel (and nothing else of the checkout)."""
    env_dir = tmp_path_factory.mktemp("env")
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run(
        [str(python), "-c", "import pgqueue_enricher; print(pgqueue_enricher.__file__)"],
        cwd=env_dir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(site)), f"the package must come from the wheel, not {where}"
    return env_dir / "bin"


def test_the_wheel_carries_every_sql_file_and_the_alembic_scripts(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for sql in sorted((ROOT / "sql").rglob("*.sql")):
        assert f"pgqueue_enricher/_sql/{sql.relative_to(ROOT / 'sql').as_posix()}" in names
    assert "pgqueue_enricher/_alembic/env.py" in names
    for revision in sorted((ROOT / "alembic" / "versions").glob("*.py")):
        assert f"pgqueue_enricher/_alembic/versions/{revision.name}" in names


async def test_an_installed_wheel_migrates_and_drains_from_outside_the_checkout(
    installed: Path,
    empty_db_url: str,
    provider_settings,  # type: ignore[no-untyped-def]
    fake_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    from tests.fakes.server import tiny_png

    env = settings_env(worker_settings(provider_settings, empty_db_url))
    env.update(LOG_FORMAT="json", PASS2_POLL_INTERVAL="0.5", PATH=f"{installed}:/usr/bin:/bin")
    env.pop("PYTHONPATH", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(installed / "pgqueue-enricher"), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    migrated = await asyncio.to_thread(run, "migrate")
    assert migrated.returncode == 0, migrated.stderr

    fake_server.storage.put(CROP, tiny_png())
    conn = await asyncpg.connect(empty_db_url)
    try:
        _, page = await make_page(conn)
        await insert_pointers(conn, page, 3)
        drained = await asyncio.to_thread(run, "run", "--drain", "--concurrency", "2")
        assert drained.returncode == 0, drained.stderr
        events = [json.loads(line)["event"] for line in drained.stderr.splitlines() if line.startswith("{")]
        assert events.count("pointer_complete") == 3
        assert await conn.fetchval("SELECT count(*) FROM pointers WHERE enrichment_status = 'complete'") == 3
    finally:
        await conn.close()

    status = await asyncio.to_thread(run, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"]["complete"] == 3
    requeued = await asyncio.to_thread(run, "requeue", "--all-failed")
    assert requeued.returncode == 0 and requeued.stdout.strip() == "requeued 0"
