"""Database outages: which errors mean "the database is away", and holding finished work over one.

Only a database that is away is waited for; a bug stops the worker. asyncpg reports a refused
or lost connection as OSError (a missing Unix socket even as FileNotFoundError), so OSError
alone cannot be the test: a missing SQL file is an OSError too. A socket-level failure always
carries an errno; an error raised by our own code does not. The SQL files are read before the
first connection, so an incomplete installation fails at start-up with one sentence.

A result that has been paid for (a description, an embedding) outlives an outage: while this
worker's lease on the row may still hold nobody else can take the row, so its fenced write is
retried until the lease may have run out; after that the fence would refuse it anyway.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import asyncpg

from pgqueue_enricher.schema.sqlfiles import blocks

T = TypeVar("T")

# What a lost or refused database connection looks like to asyncpg, from any statement
# below: callers retry these (the pool opens a new connection) and report anything else.
DB_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionFailureError,
    # A pooled connection whose backend was terminated (pg_terminate_backend, a failover)
    # while idle can refuse the next statement with "cannot switch to state N; another
    # operation (2) is in progress" before sending anything (asyncpg #784, #1069); the
    # pool then discards it, so a retry runs on a fresh connection.
    asyncpg.exceptions.InternalClientError,
)

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


class LeaseClock:
    """When each in-flight row's lease was last set (claim or heartbeat), by this process's clock.

    The time recorded is when the statement was *sent*; the database computed
    `now() + lease` later than that, so `sent + lease` never overstates the real expiry.
    """

    def __init__(self, lease_seconds: float) -> None:
        self.lease = lease_seconds
        self._renewed: dict[uuid.UUID, float] = {}

    def renewed(self, pointer_ids: Iterable[uuid.UUID], sent_at: float) -> None:
        for pointer_id in pointer_ids:
            self._renewed[pointer_id] = max(sent_at, self._renewed.get(pointer_id, sent_at))

    def forget(self, pointer_id: uuid.UUID) -> None:
        self._renewed.pop(pointer_id, None)

    def deadline(self, pointer_id: uuid.UUID) -> float:
        """The monotonic time until which this worker's lease on the row may still hold."""
        renewed = self._renewed.get(pointer_id)
        return renewed + self.lease if renewed is not None else 0.0


async def retry_until(
    call: Callable[[], Awaitable[T]],
    deadline: Callable[[], float],
    unavailable: tuple[type[BaseException], ...],
    on_retry: Callable[[BaseException, float, float], None],
    *,
    first_backoff: float = 0.2,
    max_backoff: float = 5.0,
) -> T:
    """`call()` until it succeeds, retrying over `unavailable` errors while `deadline()` lies ahead.

    `deadline` is asked again after every failure, since a heartbeat that reaches the
    database in the meantime moves it on. `on_retry(error, wait, remaining)` is told of each
    retry. The last error is raised once the deadline has passed.
    """
    backoff = first_backoff
    while True:
        try:
            return await call()
        except unavailable as exc:
            if not is_outage(exc):
                raise as_fault(exc) from exc
            remaining = deadline() - time.monotonic()
            if remaining <= 0:
                raise
            wait = min(backoff, remaining)
            on_retry(exc, wait, remaining)
            await asyncio.sleep(wait)
            backoff = min(backoff * 2, max_backoff)
