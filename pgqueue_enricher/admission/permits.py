"""One worker's permit statements on a provider's shared row, coalesced: many calls, one statement.

Why: every gated call must get its own slot in the fleet's GCRA schedule, and the schedule
lives in one row per provider. Drawing each permit with its own statement put two or three
statements per pointer on that row (the Gemini permit, its token correction, the Voyage
permit), each a committed UPDATE of the same hot row: under load the queue spent more time
on permits than on the pointers (bench/throughput.py --gate limited, 0.57 of the raw-SQL
loop at concurrency 32). What the design keeps and what it changes:

- At most one permit statement per provider is in flight in a worker. Calls that ask while
  it runs queue up and all go in the next statement, which reserves their slots as
  consecutive slots of the schedule, in the order they asked, in one UPDATE (sql/admission.sql
  `provider_state_acquire`; the slots are exactly those the same calls would have got one
  statement each). A statement is started at once when none is running, so an idle worker
  waits no longer than before; under load a statement carries as many calls as arrived during
  the previous one, and the cost per permit falls as the load grows. Nothing waits for a
  timer to fill a batch: a batching delay would be paid by every call at low load.
- Each caller still sleeps until its own slot holding no connection, so the callers of one
  batch, and of the batches of every worker, start in slot order; a refusal (slot too far
  away, provider paused) is decided per call, as the one-call statement did.
- Token corrections (what the provider counted minus the estimate) no longer cost a statement:
  they are summed here and charged by this worker's next permit statement for the provider,
  before its slots are computed. With no such statement within the refresh period the
  refresh loop charges them (`flush`), so the rest of the fleet sees them at most
  admission.REFRESH_S late: a short delay next to a per-minute budget, and the budget is
  charged in full either way.
- The bookkeeping of a success after failures (the fleet's run of outages ends, a pause is
  lifted) is not folded into permits: it must reach the fleet when it happens (a probe's
  success lifts the pause for everyone), and an ungated provider has no permit statement to
  carry it. It only runs while this worker has seen a failure run or a pause, and it is
  coalesced the same way (`SingleFlight`), so a burst of successes costs one statement.
- The adaptive increase per admitted call was already part of the permit statement; a batch
  applies one increase per reserved call, each call paced at the rate after the increases of
  the calls before it.
- Coalescing alone does nothing where calls rarely overlap (concurrency 3: 1.01 calls per
  statement), so the statement itself was made cheap too. The pools run without a statement
  cache (for transaction poolers), and parsing and planning the batch statement cost more
  than running it: revision 0011 makes it the plpgsql function
  `pgqueue_enricher_acquire_permits`, whose plan a connection keeps (about a quarter of the
  backend CPU of the plain statement, measured). And its commit does not wait for the WAL
  flush (synchronous_commit off for that transaction alone), which under load had meant
  queueing behind the pointers' own 8 KB writes. A reservation is visible to the fleet as
  soon as it commits either way; only a crash of Postgres itself can lose the reservations
  of the last fraction of a second (until the WAL writer or any ordinary commit flushes
  them), after which those slots could be given twice, once: the 3 % headroom covers it.
  A database not yet migrated to 0011, or a role not granted the function, gets the same
  statement as plain SQL.

- Later (bench/throughput.py at concurrency 3 still paid two permit round trips per pointer):
  a describe call's permit is drawn by the claim statement of its row
  (`Admission.claim`, sql/queries.sql `pointers_claim_with_permits`), the statement right
  before the call, so it costs no round trip at all. The Voyage permit was drawn while the
  checkpoint was written, beside it; that still cost a statement, and the two statements at
  once slowed each other on the shared cores, so it too rides on the statement before its
  call, the checkpoint (`Admission.checkpoint`, `pointers_checkpoint_with_permit`). And
  revision 0012 gives the function a path of its own for one call (most statements are of
  one), which decides the same with less of the server (figures in the README).
- Riding is not limited to one statement at a time the way the batch is: claims and
  checkpoints that ride at once queue on the provider's row lock, but at concurrency 32 a
  cap on them (the rest asking the batch) measured no cheaper, and each batch is one more
  transaction, the costliest part of a permit on the database.

Kept out on purpose: reserving slots ahead of the calls that will use them (a cache of
permits). A slot taken before it is needed is either wasted or used late, and late slots
bunch up into bursts the provider's own windowed quota refuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class SingleFlight(Generic[Item, Result]):
    """Runs `run(items)` for submitted items, one run at a time; items submitted while a run is
    in flight go into the next one. `run` returns one result per item, in order."""

    def __init__(self, run: Callable[[list[Item]], Awaitable[list[Result]]]) -> None:
        self._run = run
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._task: asyncio.Task[None] | None = None
        self.runs = 0  # runs that completed: how many statements the items cost

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():  # done: ended with a loop that closed
            self._task = asyncio.create_task(self._drain(), name="pgqe-single-flight")
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while self._queue:
                # A caller cancelled before its run starts takes nothing from the run.
                batch = [(item, future) for item, future in self._queue if not future.done()]
                self._queue = []
                if not batch:
                    continue
                try:
                    results = await self._run([item for item, _ in batch])
                except Exception as exc:  # noqa: BLE001 - each caller gets the run's failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.runs += 1
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                batch = []
        finally:
            self._task = None
            # Cancelled (the loop is closing): nobody may wait for a run that will not come.
            for _, future in batch + self._queue:
                if not future.done():
                    future.cancel()
            self._queue = []


@dataclass(frozen=True)
class Grant:
    """What the permit statement decided for one call."""

    reserved: bool
    wait_s: float  # until the call's slot (refused: until the first slot left)
    slot: datetime | None
    paused: bool
    epoch: int  # the throttle epoch the call is admitted under


# charge(tokens of each call in order, token correction) -> one grant per call
Charge = Callable[[list[int], int], Awaitable[list[Grant]]]


class ProviderPermits:
    """One provider's permits in one worker: calls coalesced into batches, corrections summed."""

    def __init__(self, charge: Charge) -> None:
        self._charge = charge
        self._flight: SingleFlight[int | None, Grant | None] = SingleFlight(self._run)
        self.correction = 0  # input tokens counted minus estimated, not yet charged to the row
        self.permits = 0  # calls given a grant by a statement
        self.statements = 0  # permit statements run: permits / statements is the batch size
        self.carried = 0  # permits drawn by a claim or checkpoint (Admission), costing no statement

    async def reserve(self, tokens: int) -> Grant:
        """This call's grant, from the next permit statement (started now when none is running)."""
        grant = await self._flight.submit(tokens)
        assert grant is not None
        return grant

    async def ride(self, statement: Callable[[int], Awaitable[list[Any]]]) -> list[Any]:
        """The rows of another statement that draws this provider's permits, one per row (the
        claim: Admission.claim), given the corrections summed so far to charge with them.

        With no row the permit function was not called and charged nothing: the corrections
        wait for the next statement, as they do when the statement fails."""
        correction, self.correction = self.correction, 0
        try:
            rows = await statement(correction)
        except BaseException:
            self.correction += correction
            raise
        if not rows:
            self.correction += correction
        self.carried += len(rows)
        return rows

    def correct(self, delta: int) -> None:
        """Charge `delta` more input tokens (less when negative) with the next statement."""
        self.correction += delta

    async def flush(self) -> None:
        """Charge the corrections no permit statement has carried yet (the refresh loop's job)."""
        if self.correction:
            await self._flight.submit(None)

    async def _run(self, items: list[int | None]) -> list[Grant | None]:
        asks = [tokens for tokens in items if tokens is not None]
        correction, self.correction = self.correction, 0
        if not asks and not correction:
            return [None] * len(items)  # a flush whose correction an earlier statement carried
        try:
            grants = iter(await self._charge(asks, correction))
        except BaseException:
            # Not charged, or not known to be: charge it with the next statement rather than
            # lose it (charging a correction twice errs on the side of the budget).
            self.correction += correction
            raise
        self.statements += 1
        self.permits += len(asks)
        return [None if tokens is None else next(grants) for tokens in items]
