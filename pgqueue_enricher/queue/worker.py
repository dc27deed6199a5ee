"""The worker loop: claim as many pointers as there are free slots, start them, wait.

The worker only schedules: it opens the providers before its first claim, claims (statements.py)
and starts each pointer on the pipeline (pipeline.py), which enriches the row and writes its
outcome. A notification, a poll tick or a freed slot wakes the loop; every decision is the
claim query's. Side duties run beside it as small tasks: the heartbeat extends the leases of
in-flight rows, the rescue returns expired leases of crashed workers, and the listener
keeps the doorbell connected. `run_pass2_worker` (daemon.py) is the whole thing as a coroutine, for
the CLI and for a host app's FastAPI lifespan alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from pgqueue_enricher.admission.gate import Admission
from pgqueue_enricher.aio import end_tasks, set_within, supervised
from pgqueue_enricher.errors import PermanentFailure, TransientFailure
from pgqueue_enricher.logs import get_logger
from pgqueue_enricher.ops.health import LoopWatch
from pgqueue_enricher.ops.metrics import WorkerMetrics
from pgqueue_enricher.ops.registry import Registry, Report, heartbeat_interval
from pgqueue_enricher.providers.factory import Providers, build_providers
from pgqueue_enricher.queue import statements
from pgqueue_enricher.queue.connections import keep_session, prepare_session, statement_cache_size
from pgqueue_enricher.queue.listener import DoorbellListener
from pgqueue_enricher.queue.outages import (
    DB_UNAVAILABLE,
    LeaseClock,
    WorkerFault,
    as_fault,
    is_outage,
    load_runtime_sql,
    retry_until,
)
from pgqueue_enricher.queue.pipeline import Pipeline
from pgqueue_enricher.redact import exception_reason, register_settings_secrets
from pgqueue_enricher.schema import migrations
from pgqueue_enricher.schema.sqlfiles import query
from pgqueue_enricher.settings import ConfigError, Settings

T = TypeVar("T")
PROGRESS_INTERVAL = 0.5  # seconds between drain-mode counts while claims succeed
log = get_logger("pgqueue_enricher.queue.worker")


def default_worker_id() -> str:
    # Short enough to fit whole in a connection's application_name (63 bytes in all).
    return f"{socket.gethostname()[:28]}-{os.getpid()}-{secrets.token_hex(2)}"


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        worker_id: str | None = None,
        providers: Providers | None = None,
        stop_event: asyncio.Event | None = None,
        drain: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.providers = providers
        self.stop_event = stop_event or asyncio.Event()
        self.drain = drain
        self.on_progress = on_progress
        self.metrics = WorkerMetrics()
        # Rung by whatever means "claim now": a NOTIFY, a freed slot, a retry falling due, a
        # pause lifted, the stop. One event, so the loop's wait creates no task per turn.
        self.doorbell = asyncio.Event()
        self.in_flight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.claiming = 0  # slots asked for by claims still running (they may run side by side)
        # A claim found the free slots taken by claims still running: one more claim once they
        # end, or a NOTIFY heard meanwhile would be lost (their statements began before it).
        self.claim_again = False
        self.refills: set[asyncio.Task[None]] = set()
        # The last claim found fewer rows than it asked for: the queue was empty then, so a
        # freed slot does not claim (a NOTIFY, a retry falling due or the poll wakes the loop).
        self.queue_seen_empty = False
        self.shutting_down = False  # however the loop ended: no claim from here on
        self.lost: set[uuid.UUID] = set()
        self.pool: asyncpg.Pool | None = None
        self.pipeline: Pipeline | None = None  # once the providers are open
        self.listener = DoorbellListener(
            settings.listen_url(), self.worker_id, self.doorbell, notify=self._ping_listener
        )
        self.metrics.listener = self.listener
        self.admission = Admission(settings, self.worker_id, self.db, self.doorbell)  # provider admission
        self.metrics.admission = self.admission
        self.lease = settings.pass2_lease_seconds
        self.leases = LeaseClock(self.lease)
        self.loop_watch = LoopWatch(settings.pass2_poll_interval)
        # The pause of the providers as this worker sees it (provider admission plugs in here).
        self.provider_pause: Callable[[], str | None] = self.admission.pause_reason
        self.registry = Registry(self.worker_id, heartbeat_interval(self.lease), self._report, self.db)
        # Set once in-flight work is settled: the side duties end at their next pause.
        self.closing = asyncio.Event()
        self._next_progress = 0.0

    # -- database access with reconnects ---------------------------------------------

    async def _open_pool(self) -> asyncpg.Pool:
        backoff = 0.5
        while True:
            try:
                url = self.settings.require_database_url()
                cache_size = await statement_cache_size(url)
                pool = await asyncpg.create_pool(
                    url,
                    min_size=1,
                    # The claim loop, the heartbeat and every in-flight write-back; with the
                    # listener that is PASS2_MAX_CONCURRENT + 2 connections at most.
                    max_size=self.settings.pass2_max_concurrent + 1,
                    statement_cache_size=cache_size,
                    server_settings={"application_name": f"pgqueue-enricher:{self.worker_id}"},
                    timeout=10,
                    reset=keep_session,
                    init=prepare_session,
                )
                log.info("pool_opened", prepared_statements=cache_size > 0)
                return pool
            except DB_UNAVAILABLE as exc:
                if not is_outage(exc):
                    raise as_fault(exc) from exc
                self.metrics.db_errors += 1
                log.warning("database_unavailable", reason=exception_reason(exc), retry_in_s=backoff)
                if await set_within(self.stop_event, backoff):
                    raise
                backoff = min(backoff * 2, 30.0)

    async def db(self, operation: Callable[..., Awaitable[T]], *args: Any, attempts: int = 6) -> T:
        """Run `operation(pool, *args)`, retrying over lost connections (the pool opens new ones)."""
        assert self.pool is not None
        backoff = 0.2
        for attempt in range(1, attempts + 1):
            try:
                return await operation(self.pool, *args)
            except DB_UNAVAILABLE as exc:
                if not is_outage(exc):
                    raise as_fault(exc) from exc
                self.metrics.db_errors += 1
                if attempt == attempts:
                    raise
                log.warning("database_retry", reason=exception_reason(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        raise AssertionError("unreachable")

    async def settle_db(
        self, operation: Callable[..., Awaitable[T]], fence: statements.Fence, *args: Any
    ) -> T:
        """The pipeline's `db`: its writes are fenced, and held over an outage while the lease may hold."""

        def on_retry(exc: BaseException, wait: float, remaining: float) -> None:
            self.metrics.db_errors += 1
            log.warning(
                "pointer_write_held",
                pointer_id=str(fence.pointer_id),
                reason=exception_reason(exc),
                retry_in_s=round(wait, 2),
                lease_left_s=round(remaining, 1),
            )

        return await retry_until(
            lambda: operation(self.pool, fence, *args),
            lambda: self.leases.deadline(fence.pointer_id),
            DB_UNAVAILABLE,
            on_retry,
        )

    async def _check_schema(self) -> None:
        """Once, before the first claim: every statement of this package assumes its head revision."""
        try:
            revision = await self.db(lambda pool: pool.fetchval(query("schema_revision")))
        except asyncpg.UndefinedTableError:
            revision = None
        if migrations.behind_head(revision):
            pool, self.pool = self.pool, None  # nothing of this worker is in the database to clean up
            await pool.close()
            raise ConfigError(
                f"the database is at schema revision {revision or 'none'}, behind this package's "
                f"{migrations.head_revision()}: run `pgqueue-enricher migrate`"
            )

    async def _ping_listener(self, channel: str) -> None:
        """The listener's health NOTIFY, from a pool session (never the listening one)."""
        await self.db(lambda pool: pool.execute(query("listener_ping"), channel), attempts=1)

    def _report(self) -> Report:
        return Report(len(self.in_flight), self.listener.state, self.provider_pause())

    # -- one pointer -------------------------------------------------------------------

    async def _process(self, pointer: statements.ClaimedPointer) -> None:
        assert self.pipeline is not None
        settled = await self.pipeline.process(pointer)
        if settled.retry_in is not None:
            # Nothing notifies when a retry falls due: ring our own doorbell then, rather than
            # leaving the row to the next poll tick (up to PASS2_POLL_INTERVAL late).
            asyncio.get_running_loop().call_later(settled.retry_in, self.doorbell.set)

    def _start(self, pointer: statements.ClaimedPointer) -> None:
        task = asyncio.create_task(self._process(pointer), name=f"pointer-{pointer.id}")
        self.in_flight[pointer.id] = task

        def done(_task: asyncio.Task[None], pointer_id: uuid.UUID = pointer.id) -> None:
            self.in_flight.pop(pointer_id, None)
            self.leases.forget(pointer_id)
            self.lost.discard(pointer_id)
            if self.shutting_down or self.stop_event.is_set() or self.admission.paused():
                self.doorbell.set()  # the loop decides: stopping, paused, probing
                return
            if self.queue_seen_empty and not self.drain:
                return  # nothing to claim: new rows ring the doorbell themselves
            refill = asyncio.create_task(self._refill(), name="pgqe-refill")
            self.refills.add(refill)
            refill.add_done_callback(self.refills.discard)

        task.add_done_callback(done)

    async def _refill(self) -> None:
        """A freed slot claims its next row at once, beside any other claim of this worker.

        Why not leave it to the loop: the loop runs one claim at a time, so a slot freed while
        another slot's claim ran would wait for it, and then for the loop to wake, on every
        pointer. Claims running side by side never ask for more than the free slots
        (`claiming`). A claim that fails leaves it to the loop (its backoff), and so does one
        that finds nothing in drain mode (the loop decides the end). Otherwise an empty claim
        wakes nobody: the queue is empty, and the next insert's NOTIFY (or the poll) wakes the
        loop; ringing here would cost an idle worker a second empty claim after every pointer.
        For the same reason, outside drain mode a slot that frees after a claim found the queue
        empty claims nothing (`queue_seen_empty`): at low load an empty claim after every
        finished pointer would hold its slots for a round trip just when the next insert's
        NOTIFY might come, and make the NOTIFY's claim wait for it.
        """
        try:
            claimed = await self._claim()
        except Exception as exc:  # noqa: BLE001 - the loop retries with its own backoff
            log.debug("refill_failed", reason=exception_reason(exc))
            self.doorbell.set()
            return
        if claimed == 0 and self.drain:
            self.doorbell.set()

    # -- side duties -------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        interval = max(self.lease / 3, 0.2)
        missed: set[uuid.UUID] = set()
        wait = interval
        backoff = 0.5  # after a failed heartbeat
        while not await set_within(self.closing, wait):
            wait = interval
            ids = list(self.in_flight)
            if not ids:
                missed = set()
                continue
            sent = time.monotonic()
            try:
                held = await self.db(statements.extend_leases, ids, self.worker_id, self.lease, attempts=1)
            except DB_UNAVAILABLE as exc:
                # Try again soon, not a third of a lease later: the leases must be renewed as
                # soon as the database answers again, before any of them runs out.
                wait, backoff = min(backoff, interval), min(backoff * 2, 5.0)
                log.warning("heartbeat_failed", reason=exception_reason(exc), retry_in_s=round(wait, 2))
                continue
            backoff = 0.5
            self.leases.renewed(held.intersection(self.in_flight), sent)
            # A row whose own write-back (complete, retry, fail) has just committed is not held
            # either while its task awaits the reply: only a row missing on two heartbeats in a
            # row, its task still running, was taken away.
            gone = set(ids) - held
            gone, missed = gone & missed, gone
            for pointer_id in gone:
                task = self.in_flight.get(pointer_id)
                if task is not None and pointer_id not in self.lost:
                    # Another worker owns it now: stop paying for a result that cannot be written.
                    self.lost.add(pointer_id)
                    log.warning(
                        "pointer_lease_lost", pointer_id=str(pointer_id), detail="cancelled in flight"
                    )
                    task.cancel()

    async def _rescue(self) -> None:
        interval = min(max(self.lease / 2, 0.5), 60.0)
        while not self.closing.is_set():
            try:
                rescued = await self.db(
                    statements.rescue_expired, self.settings.pass2_max_attempts, self.lease, attempts=2
                )
                for pointer_id, status in rescued:
                    self.metrics.rescued += 1
                    log.warning("pointer_lease_expired", pointer_id=str(pointer_id), new_status=status)
                if rescued:
                    self.doorbell.set()
            except DB_UNAVAILABLE as exc:
                log.warning("rescue_failed", reason=exception_reason(exc))
            await set_within(self.closing, interval)

    # -- the loop ----------------------------------------------------------------------

    async def _claim(self) -> int | None:
        """Claim rows into the free slots and start them: how many, or None when there was no
        slot to claim for (every one running or being claimed, or the worker stopping).

        None is not "the queue is empty": drain mode counts what is left at once only after a
        claim that could have found rows and found none (a count on every turn that found the
        slots taken scanned the queue many times a second at concurrency 32)."""
        free = self.settings.pass2_max_concurrent - len(self.in_flight) - self.claiming
        if self.stop_event.is_set() or self.shutting_down:
            return None
        if free <= 0:
            if self.claiming and len(self.in_flight) < self.settings.pass2_max_concurrent:
                self.claim_again = True
            return None
        self.claiming += free  # before the first await: a claim beside this one sees them taken
        try:
            allowed = self.admission.claimable(free, len(self.in_flight))  # 0 while paused
            if allowed <= 0:
                return 0
            sent = time.monotonic()
            claimed = await self.claim_rows(allowed)
            self.queue_seen_empty = len(claimed) < allowed
        finally:
            self.claiming -= free
            if self.claim_again and not self.claiming:
                self.claim_again = False
                self.doorbell.set()
        self.leases.renewed((pointer.id for pointer in claimed), sent)
        for pointer in claimed:
            self.metrics.claims += 1
            log.info(
                "pointer_claimed",
                pointer_id=str(pointer.id),
                attempt=pointer.attempt,
                title=pointer.title[:120],
            )
            self._start(pointer)
        return len(claimed)

    async def claim_rows(self, limit: int) -> list[statements.ClaimedPointer]:
        return await self.db(statements.claim, limit, self.worker_id, self.lease, attempts=1)

    async def _drained(self, claimed: int | None) -> bool:
        """Drain mode: done once a claim found nothing and no row is pending or processing.

        The count also feeds the progress bar; unless a claim found nothing it runs at most
        every PROGRESS_INTERVAL, so that it does not add a query to every turn.
        """
        now = time.monotonic()
        if claimed != 0 and now < self._next_progress:
            return False
        self._next_progress = now + PROGRESS_INTERVAL
        pending, processing = await self.db(statements.count_unfinished)
        if self.on_progress is not None:
            self.on_progress(pending, processing)
        return not claimed and pending == 0 and processing == 0 and not self.in_flight

    async def _wait_for_wake_up(self) -> None:
        """Until the doorbell rings or the poll interval passes.

        Why one event and no helper tasks: this runs after every claim, and waiter tasks
        created and cancelled per turn (a doorbell, a freed slot, the stop) would sit in the
        path between a slot freeing and the next claim."""
        if not self.doorbell.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.pass2_poll_interval):
                    await self.doorbell.wait()
        self.doorbell.clear()

    async def _ring_on_stop(self) -> None:
        """The stop event may be the host's own (daemon.py): ring the doorbell when it is set."""
        await self.stop_event.wait()
        self.doorbell.set()

    async def _loop(self) -> None:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                claimed = await self._claim()
                self.loop_watch.turned()
                # Drain mode is done only when this claim found nothing and nothing is left.
                if self.drain and await self._drained(claimed):
                    log.info("drained", completed=self.metrics.completions)
                    return
                backoff = 0.5
            except DB_UNAVAILABLE as exc:
                self.metrics.db_errors += 1
                log.warning("claim_failed", reason=exception_reason(exc), retry_in_s=backoff)
                if await set_within(self.stop_event, backoff):
                    return
                # Capped low: a claim is cheap, and work should resume soon after an outage.
                backoff = min(backoff * 2, 5.0)
                continue
            # A claim fills every free slot or empties the queue: either way, wait for a
            # notification, a freed slot, the poll timer or the stop signal.
            await self._wait_for_wake_up()

    async def _shutdown(self) -> None:
        """Let in-flight work finish within the grace period, then give the rest back."""
        self.shutting_down = True
        if self.refills:  # claims already sent: their rows join the in-flight work below
            await asyncio.wait(list(self.refills), timeout=self.settings.pass2_shutdown_grace)
        if self.in_flight:
            log.info(
                "shutdown_waiting", in_flight=len(self.in_flight), grace_s=self.settings.pass2_shutdown_grace
            )
            await asyncio.wait(list(self.in_flight.values()), timeout=self.settings.pass2_shutdown_grace)
        unfinished = list(self.in_flight)
        await end_tasks(list(self.in_flight.values()))
        if unfinished and self.pool is not None:
            try:
                released = await self.db(statements.release, unfinished, self.worker_id, attempts=3)
                log.info("shutdown_released", released=len(released), attempt_given_back=True)
            except DB_UNAVAILABLE as exc:
                log.error(
                    "shutdown_release_failed",
                    reason=exception_reason(exc),
                    detail="leases will expire and be rescued",
                )

    async def run(self) -> None:
        register_settings_secrets(self.settings)
        load_runtime_sql()
        log.info(
            "worker_starting", worker_id=self.worker_id, drain=self.drain, **self.settings.safe_summary()
        )
        owns_providers = self.providers is None
        if self.providers is None:
            self.providers = build_providers(self.settings)
        try:
            # Before the pool, not only before the first claim: a malformed key or a missing
            # extra is a ConfigError at once, even while the database is down (the pool would
            # retry first), and no connection is opened for a worker that cannot work.
            await self.providers.open()
        except BaseException:
            if owns_providers:
                await self.providers.aclose()
            raise
        self.pipeline = Pipeline(
            self.settings, self.worker_id, self.providers, self.settle_db, self.metrics, gate=self.admission
        )
        side_tasks: list[asyncio.Task[None]] = []
        try:
            self.pool = await self._open_pool()
            self.metrics.pool = self.pool
            await self._check_schema()
            await self.admission.start()
            side_tasks = [
                asyncio.create_task(supervised(name, duty, self.closing), name=name)
                for name, duty in (
                    ("listener", self.listener.run),
                    ("heartbeat", self._heartbeat),
                    ("rescue", self._rescue),
                    ("registry", lambda: self.registry.run(self.closing, DB_UNAVAILABLE)),
                    ("admission", lambda: self.admission.run(self.closing)),
                )
            ]
            side_tasks.append(asyncio.create_task(self._ring_on_stop(), name="stop-doorbell"))
            await self._loop()
        except WorkerFault as fault:
            log.error("worker_fault", reason=str(fault), detail="the worker stops")
            raise
        except DB_UNAVAILABLE:
            if not self.stop_event.is_set():
                raise
        finally:
            await self._shutdown()
            self.closing.set()
            self.listener.stop()
            await end_tasks(side_tasks)
            if self.pool is not None:
                try:
                    await self.registry.remove()
                except DB_UNAVAILABLE as exc:
                    log.warning("registry_remove_failed", reason=exception_reason(exc), detail="it expires")
                # close() waits for every connection to be released; do not let one stuck
                # connection turn a graceful stop into a hang.
                try:
                    await asyncio.wait_for(self.pool.close(), 5)
                except (TimeoutError, *DB_UNAVAILABLE):
                    self.pool.terminate()
            if owns_providers and self.providers is not None:
                await self.providers.aclose()
            log.info("worker_stopped", worker_id=self.worker_id, completed=self.metrics.completions)


__all__ = ["PermanentFailure", "TransientFailure", "Worker"]
