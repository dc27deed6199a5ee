"""Finished work outlives a database outage: its fenced write is held and retried until the lease ends.

A result that has been paid for (a description, an embedding) is worth more than a few seconds
of retries. While this worker's lease on the row could still be valid nobody else can take the
row, so retrying the write costs nothing but patience; once the lease may have run out, the
rescue will hand the row to another attempt (which reuses any checkpoint) and holding on is
pointless, because the fence would refuse the write anyway.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from pgqueue_enricher.faults import as_fault, is_outage

T = TypeVar("T")


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
