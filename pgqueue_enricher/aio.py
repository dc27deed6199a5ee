"""Keeping asyncio work alive and stopping it reliably: supervised duties, pauses a stop can
cut short, and cancels that stick."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable

from pgqueue_enricher.logs import get_logger
from pgqueue_enricher.redact import exception_reason

log = get_logger("pgqueue_enricher.aio")


async def set_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `event`; True when it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    return event.is_set()


async def end_tasks(tasks: Iterable[asyncio.Task[None]], patience: float = 5.0) -> None:
    """Cancel the tasks until every one has ended, for at most `patience` seconds.

    One cancel is not always enough on Python 3.11: a wait_for whose inner awaitable finishes
    in the same loop iteration as the cancel returns the result and drops the cancel
    (CPython gh-86296), and library code under a task can do the same: a side duty of the
    worker could then carry on to its next pause, holding up the stop.
    """
    tasks = list(tasks)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    pending = {task for task in tasks if not task.done()}
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(0.5, max(deadline - loop.time(), 0.01)))
    if pending:
        log.error("tasks_ignore_cancel", tasks=sorted(task.get_name() for task in pending))
    # Collect the outcomes, so that none is reported as "never retrieved".
    await asyncio.gather(*(task for task in tasks if task.done()), return_exceptions=True)


async def supervised(
    name: str,
    duty: Callable[[], Awaitable[None]],
    stopping: asyncio.Event,
    *,
    first_backoff: float = 0.5,
    max_backoff: float = 30.0,
) -> None:
    """Run `duty` until `stopping` is set, restarting it with backoff whenever it raises.

    A side duty (heartbeat, rescue, listener) that dies of a bug or an unexpected error must
    not silently take its job with it: without the heartbeat every lease of the worker
    expires and its work is done twice. Each crash is logged with its reason; the backoff
    resets once the duty has run for a while without failing.
    """
    backoff = first_backoff
    loop = asyncio.get_running_loop()
    while not stopping.is_set():
        started = loop.time()
        try:
            await duty()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is logged and the duty restarted
            if loop.time() - started > 60:
                backoff = first_backoff
            log.error(
                "side_duty_crashed",
                duty=name,
                reason=exception_reason(exc),
                restart_in_s=backoff,
                exc_info=True,
            )
            if await set_within(stopping, backoff):
                return
            backoff = min(backoff * 2, max_backoff)
            log.info("side_duty_restarted", duty=name)
        else:
            return  # a duty returns only when it is told to stop
