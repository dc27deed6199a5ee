"""What `/healthz` answers: healthy only when the worker is doing its job, else why not.

"The process answers HTTP" and "SELECT 1 works" both stayed true for a worker that could not
claim anything. Health here means: the claim loop completed an iteration within a few poll
intervals, the database answered just now, the listener is not known to be deaf, and no
provider pause holds the fleet. Each failed condition is one line of the body.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from pgqueue_enricher.redact import scrub

# The loop completes an iteration at least once per poll interval; two missed ones mean stuck.
STALE_POLL_INTERVALS = 2.0
MIN_STALE_SECONDS = 1.0
DATABASE_TIMEOUT = 3.0


@dataclass
class LoopWatch:
    """When the claim loop last completed an iteration (a claim, or a check that no slot is free)."""

    poll_interval: float
    started: float = field(default_factory=time.monotonic)
    last: float | None = None

    def turned(self) -> None:
        self.last = time.monotonic()

    @property
    def stale_after(self) -> float:
        return max(STALE_POLL_INTERVALS * self.poll_interval, MIN_STALE_SECONDS)

    def problem(self) -> str | None:
        now = time.monotonic()
        if self.last is None:
            waited = now - self.started
            if waited <= self.stale_after:
                return None
            return f"claim loop: no iteration completed in {waited:.1f} s since the start"
        age = now - self.last
        if age <= self.stale_after:
            return None
        return (
            f"claim loop: stuck, last iteration completed {age:.1f} s ago "
            f"(allowed {self.stale_after:.1f} s, {STALE_POLL_INTERVALS:g} poll intervals)"
        )


@dataclass
class Verdict:
    problems: list[str]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def body(self) -> str:
        return "ok\n" if self.healthy else "".join(f"{line}\n" for line in self.problems)


async def database_problem(pool: Any, within: float = DATABASE_TIMEOUT) -> str | None:
    if pool is None:
        return "database: not connected yet"
    try:
        answer = await asyncio.wait_for(pool.fetchval("SELECT 1"), within)
    except TimeoutError:
        return f"database: no answer within {within:g} s"
    except Exception as exc:
        return f"database: {type(exc).__name__}: {exc}"[:300]
    return None if answer == 1 else "database: unexpected answer to SELECT 1"


async def check(worker: Any) -> Verdict:
    """The worker's health now; `worker` is a pgqueue_enricher.queue.worker.Worker."""
    timeout = min(DATABASE_TIMEOUT, max(worker.settings.pass2_poll_interval, 0.5))
    problems = [
        problem
        for problem in (
            await database_problem(worker.pool, timeout),
            worker.loop_watch.problem(),
            _listener_problem(worker.listener),
            _pause_problem(worker.provider_pause()),
        )
        if problem
    ]
    return Verdict([scrub(problem) for problem in problems])


def _listener_problem(listener: Any) -> str | None:
    if listener is None or listener.state != "degraded":
        return None
    return f"listener: degraded, new rows are found by polling only: {listener.degraded_reason or ''}".strip()


def _pause_problem(pause: str | None) -> str | None:
    return f"provider paused: {pause}" if pause else None
