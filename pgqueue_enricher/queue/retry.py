"""When a transient failure may be tried again: exponential backoff with jitter.

Retry n (n = the attempt that just failed) waits about base·2^(n-1), jittered by ±20 % so
that rows failed together by one outage do not all come back in the same second, capped by
PASS2_BACKOFF_MAX, and never sooner than the provider asked (Retry-After, RetryInfo).
"""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    jitter = (rng or random).uniform(0.8, 1.2)
    exponential = base * (2 ** max(attempt - 1, 0))
    delay = min(cap, exponential * jitter)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(delay, 0.0)
