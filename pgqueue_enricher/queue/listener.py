"""The doorbell listener: a dedicated connection LISTENing on pointer_enrichment.

It only sets an event; the claim query decides what to do. Its health is proven by a
round trip: a NOTIFY on a channel private to this worker, sent from *another* session (a pool
connection), must come back. Sent from the listening connection itself it would prove nothing
behind a transaction pooler, where that NOTIFY and the LISTEN share a server connection and
every other session's notification is lost. When the round trip fails the worker stays correct
by polling, says once why and how to fix it, and keeps trying to reconnect with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import asyncpg

from pgqueue_enricher.aio import set_within
from pgqueue_enricher.logs import get_logger
from pgqueue_enricher.schema.sqlfiles import query

CHANNEL = "pointer_enrichment"
log = get_logger("pgqueue_enricher.queue.listener")

ListenerState = Literal["starting", "ready", "degraded"]

DEAF_FIX = (
    "LISTEN was accepted but a notification sent from another session never arrived: the "
    "listen connection goes through a transaction pooler (Supabase port 6543, PgBouncer "
    "pool_mode=transaction) or a proxy that drops notifications. Set DATABASE_LISTEN_URL to a "
    "direct or session-mode connection (Supabase: db.<ref>.supabase.co:5432 or the session "
    "pooler on port 5432); until then new rows are found by polling every PASS2_POLL_INTERVAL."
)


class ListenerDeaf(Exception):
    """The health notification, sent from another session, did not come back in time."""


class DoorbellListener:
    def __init__(
        self,
        dsn: str,
        worker_id: str,
        doorbell: asyncio.Event,
        *,
        health_interval: float = 15.0,
        reply_timeout: float = 5.0,
        max_backoff: float = 30.0,
        notify: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self.dsn = dsn
        # Sends the health NOTIFY from a session other than the listening one (the worker
        # passes its pool); by default a short-lived connection of its own.
        self.notify = notify or self._notify_from_new_connection
        self.worker_id = worker_id
        self.doorbell = doorbell
        self.health_interval = health_interval
        self.reply_timeout = reply_timeout
        self.max_backoff = max_backoff
        self.ready = asyncio.Event()  # set while LISTEN is proven to work
        self.degraded = asyncio.Event()  # set while it is known not to work
        self.degraded_reason: str | None = None
        self.connects = 0
        # A channel name is an identifier of at most 63 bytes: derive it from the worker id.
        self.health_channel = "pgqe_health_" + hashlib.sha1(worker_id.encode()).hexdigest()[:16]
        self._conn: asyncpg.Connection | None = None
        self._reply: asyncio.Future[None] | None = None
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()

    @property
    def healthy(self) -> bool:
        return self.ready.is_set()

    @property
    def state(self) -> ListenerState:
        if self.ready.is_set():
            return "ready"
        return "degraded" if self.degraded.is_set() else "starting"

    def stop(self) -> None:
        """End `run` at its next pause, even if a cancel of its task gets lost."""
        self._stopping.set()
        self._lost.set()

    def _on_notify(self, *_args: Any) -> None:
        self.doorbell.set()

    def _on_health(self, *_args: Any) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(None)

    def _on_terminate(self, *_args: Any) -> None:
        self._lost.set()

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(
            self.dsn,
            statement_cache_size=0,
            server_settings={"application_name": f"pgqueue-enricher:{self.worker_id}"},
            timeout=10,
        )
        conn.add_termination_listener(self._on_terminate)
        await conn.add_listener(CHANNEL, self._on_notify)
        await conn.add_listener(self.health_channel, self._on_health)
        return conn

    async def _notify_from_new_connection(self, channel: str) -> None:
        conn = await asyncpg.connect(self.dsn, statement_cache_size=0, timeout=10)
        try:
            await conn.execute(query("listener_ping"), channel)
        finally:
            await conn.close()

    async def _round_trip(self) -> None:
        self._reply = asyncio.get_running_loop().create_future()
        await self.notify(self.health_channel)
        try:
            await asyncio.wait_for(self._reply, self.reply_timeout)
        except TimeoutError:
            raise ListenerDeaf(DEAF_FIX) from None

    async def run(self) -> None:
        backoff = 0.5
        first_failure_logged = False
        while not self._stopping.is_set():
            try:
                self._lost.clear()
                self._conn = await self._connect()
                await self._round_trip()
                self.connects += 1
                self.degraded.clear()
                self.degraded_reason = None
                self.ready.set()
                log.info("listener_ready", channel=CHANNEL, connects=self.connects)
                backoff = 0.5
                # Work may have arrived while we were not listening.
                self.doorbell.set()
                while True:
                    await set_within(self._lost, self.health_interval)
                    if self._stopping.is_set():
                        return
                    if self._lost.is_set():
                        raise ConnectionError("listener connection closed")
                    await self._round_trip()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = str(exc) if isinstance(exc, ListenerDeaf) else f"{type(exc).__name__}: {exc}"
                if self.healthy or not first_failure_logged:
                    log.warning("listener_degraded", reason=reason, fallback="polling", retry_in_s=backoff)
                    first_failure_logged = True
                self.ready.clear()
                self.degraded_reason = reason
                self.degraded.set()
            finally:
                await self._close()
            await set_within(self._stopping, backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            if not conn.is_closed():
                conn.terminate()
