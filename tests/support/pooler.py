"""A real PgBouncer in transaction mode in front of the test server, as Supabase's port 6543 is.

Debian's `pgbouncer` package provides the binary (`.ci/run` installs it); where it is missing
the tests that need it are skipped with that reason. Clients authenticate to PgBouncer with a
password (SCRAM, from its auth_file), so the URLs the daemon gets carry a real secret; PgBouncer
reaches the server over the same socket or TCP address as the tests, where it is trusted.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pgqueue_enricher.demo import embedded_postgres as database

BINARY_CANDIDATES = ("pgbouncer", "/usr/sbin/pgbouncer")


def pgbouncer_binary() -> str | None:
    for candidate in BINARY_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_address(url: str) -> tuple[str, int, str]:
    """(host or socket directory, port, user) of the server the tests use."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
    port = int(query.get("port", [parts.port or 5432])[0])
    return host, port, parts.username or "postgres"


def _open_socket_path(directory: str) -> None:
    """Let PgBouncer, running as `nobody`, reach a Unix socket in a root-only temp directory."""
    path = Path(directory)
    for part in (path, *path.parents):
        if part == Path("/") or not part.exists():
            continue
        mode = part.stat().st_mode
        if not mode & 0o001:
            part.chmod(mode | 0o001)


class PgBouncer:
    """One PgBouncer process; `kill()` and `start()` simulate an outage on the same port."""

    def __init__(self, server_url: str, binary: str) -> None:
        self.binary = binary
        self.host, self.server_port, self.user = _server_address(server_url)
        self.password = f"pooler-secret-{secrets.token_hex(8)}"
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgqe-pgbouncer-"))
        self.dir.chmod(0o755)
        self.log_path = self.dir / "pgbouncer.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.as_root = os.geteuid() == 0
        if self.host.startswith("/") and self.as_root:
            _open_socket_path(self.host)
        (self.dir / "users.txt").write_text(f'"{self.user}" "{self.password}"\n')
        (self.dir / "pgbouncer.ini").write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={self.host} port={self.server_port}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = scram-sha-256",
                    f"auth_file = {self.dir / 'users.txt'}",
                    "pool_mode = transaction",
                    "default_pool_size = 20",
                    "max_client_conn = 200",
                    "server_reset_query =",
                    "ignore_startup_parameters = extra_float_digits",
                    "",
                ]
            )
        )
        for name in ("users.txt", "pgbouncer.ini"):
            (self.dir / name).chmod(0o644)

    def url(self, database_url: str) -> str:
        """The same database as `database_url`, reached through this PgBouncer."""
        name = urlsplit(database_url).path.lstrip("/") or "postgres"
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{name}"

    def start(self, timeout: float = 15.0) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        command = [self.binary, *(["-u", "nobody"] if self.as_root else []), str(self.dir / "pgbouncer.ini")]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}: {self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            time.sleep(0.05)  # polling a port that has no event of its own
        raise RuntimeError(f"pgbouncer did not listen on {self.port} within {timeout}s: {self.log()}")

    def kill(self) -> None:
        """SIGKILL: every client and server connection drops at once, nothing is answered."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def pooler(pg_server: database.DatabaseHandle) -> Iterator[PgBouncer]:
    """A fresh PgBouncer (transaction mode) for this test, in front of the test server."""
    binary = pgbouncer_binary()
    if binary is None:
        pytest.skip("pgbouncer is not installed (Debian: apt-get install pgbouncer; .ci/run does it)")
    bouncer = PgBouncer(pg_server.url, binary)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
