"""`pgqueue-enricher dashboard` refuses to serve without authentication, saying what to set."""

from __future__ import annotations

import pytest

from pgqueue_enricher.cli.dashboard import is_loopback
from pgqueue_enricher.cli.main import main


@pytest.fixture(autouse=True)
def no_passwords(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    monkeypatch.delenv("DASHBOARD_VIEWER_PASSWORD", raising=False)
    monkeypatch.delenv("DASHBOARD_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:pw@127.0.0.1:1/none")


def test_no_auth_is_refused_off_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "--host", "0.0.0.0", "--no-auth"]) == 2
    err = capsys.readouterr().err
    assert "--no-auth is only allowed on a loopback address" in err and "DASHBOARD_ADMIN_PASSWORD" in err


def test_without_a_password_the_dashboard_names_the_variables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard"]) == 2
    err = capsys.readouterr().err
    assert "DASHBOARD_VIEWER_PASSWORD or DASHBOARD_ADMIN_PASSWORD" in err
    assert err.count("\n") == 1, "one sentence"


def test_a_bad_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["dashboard", "--port", "99999"])
    assert exited.value.code == 2
    assert "must be a port number" in capsys.readouterr().err


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost")))
    assert not any(map(is_loopback, ("0.0.0.0", "10.0.0.1", "::", "example.com", "")))


def test_a_short_password_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DASHBOARD_ADMIN_PASSWORD", "admin")
    assert main(["dashboard"]) == 2
    err = capsys.readouterr().err
    assert "DASHBOARD_ADMIN_PASSWORD is too short" in err and "admin" not in err, "the value is not shown"
