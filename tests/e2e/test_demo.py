"""`pgqueue-enricher demo` end to end, as a newcomer runs it: embedded Postgres, local provider."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.slow
def test_the_demo_enriches_sample_pointers_offline_and_prints_one(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GEMINI_", "VOYAGE_", "SUPABASE_", "STORAGE_", "ENRICHER_", "PASS2_"))
    }
    env.pop("DATABASE_URL", None)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pgqueue_enricher", "demo", "--pointers", "4", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"data in {tmp_path / 'pgdata'}" in out
    assert (
        "experience files seeded by the trigger: corrections.md, gaps.md, preferences.md, routing_rules.md, schedule.md"
        in out
    )
    assert "provider: local" in out
    assert "summary: pending 0, processing 0, complete 4, failed 0" in out
    assert "=== enriched pointer:" in out and "## Cross-References" in out
    assert "embedding: 1024 dimensions" in out
    # The printed pointer is the wall section: its real dimensions and callout reference.
    assert "4'-6\"" in out and "Detail 3/A501" in out
    assert elapsed < 60, f"the small demo took {elapsed:.0f}s"
