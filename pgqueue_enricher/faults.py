"""Telling an outage from a fault: only a database that is away is waited for, a bug stops the worker.

asyncpg reports a refused or lost connection as OSError (a missing Unix socket even as
FileNotFoundError), so "OSError" alone cannot be the test: a missing SQL file is an OSError
too, and retrying it as "database unavailable" once kept a worker busy doing nothing, forever,
while it looked alive. A socket-level failure always carries an errno; an error raised by our
own code (sqlfiles) does not. The SQL files are also all read before the first connection, so
an incomplete installation fails at start-up with one sentence.
"""

from __future__ import annotations

import socket

from pgqueue_enricher.sqlfiles import blocks

# Every file of sql/ the worker reads while it runs.
RUNTIME_SQL_FILES = ("queries.sql",)


class WorkerFault(RuntimeError):
    """Not an outage: retrying cannot help. The worker stops with this message (exit code 1)."""


def is_outage(exc: BaseException) -> bool:
    """Whether a DB_UNAVAILABLE-class error means the database is away (wait) or a fault (stop)."""
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return True
    if isinstance(exc, OSError):
        return exc.errno is not None
    return True


def as_fault(exc: BaseException) -> WorkerFault:
    return WorkerFault(
        f"{type(exc).__name__}: {exc} — not a database outage, so it is not retried; "
        "fix the installation or report the bug, then start the worker again"
    )


def load_runtime_sql() -> None:
    """Read every SQL file the worker needs now, so that a missing one fails before any work."""
    for relative_path in RUNTIME_SQL_FILES:
        try:
            blocks(relative_path)
        except (OSError, UnicodeDecodeError) as exc:
            raise WorkerFault(f"cannot read the worker's SQL: {exc}") from exc
