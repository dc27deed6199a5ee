"""`pgqueue-enricher dashboard` refuses to serve without authentication, saying what to set.

Run as processes: the command configures logging and registers secrets for its whole process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pgqueue_enricher.cli.dashboard import is_loopback


def dashboard(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DASHBOARD_")}
    clean["DATABASE_URL"] = "postgresql://user:pw@127.0.0.1:1/none"
    done = subprocess.run(
        [sys.executable, "-m", "pgqueue_enricher", "dashboard", *args],
        cwd=tmp_path,  # no .env of the checkout
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stderr


def test_no_auth_is_refused_off_loopback(tmp_path: Path) -> None:
    code, err = dashboard(tmp_path, "--host", "0.0.0.0", "--no-auth")
    assert code == 2
    assert "--no-auth is only allowed on a loopback address" in err and "DASHBOARD_ADMIN_PASSWORD" in err


def test_without_a_password_the_dashboard_names_the_variables(tmp_path: Path) -> None:
    code, err = dashboard(tmp_path)
    assert code == 2
    assert "DASHBOARD_VIEWER_PASSWORD or DASHBOARD_ADMIN_PASSWORD" in err
    assert err.count("\n") == 1, "one sentence"


def test_a_short_password_is_refused_without_showing_it(tmp_path: Path) -> None:
    code, err = dashboard(tmp_path, DASHBOARD_ADMIN_PASSWORD="hunter2")
    assert code == 2
    assert "DASHBOARD_ADMIN_PASSWORD is too short" in err and "hunter2" not in err


def test_a_bad_port_is_a_usage_error(tmp_path: Path) -> None:
    code, err = dashboard(tmp_path, "--port", "99999")
    assert code == 2
    assert "must be a port number" in err


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost")))
    assert not any(map(is_loopback, ("0.0.0.0", "10.0.0.1", "::", "example.com", "")))
