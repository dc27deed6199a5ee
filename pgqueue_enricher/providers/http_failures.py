"""The failure vocabulary every HTTP provider shares: which statuses are worth another attempt,
and how long the server asked us to wait before it.

Gemini, Voyage and Supabase Storage reach this through three different clients, but a 429
means the same thing from each of them, and the queue decides retries from `transient` and
`retry_after` alone. Each provider keeps here only what is the same for all; what a service
says in its own way (Gemini's RetryInfo, Voyage's error classes, Storage's not-found in a
400) stays beside that provider.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping

from pgqueue_enricher.errors import TransientFailure

_DURATION = re.compile(r"^\s*(?P<value>\d+(?:\.\d+)?)\s*s\s*$")


def is_transient_status(status: int | None) -> bool:
    """408, 429 and every 5xx: the same request can succeed later. Any other 4xx cannot,
    so the queue fails the row instead of spending attempts on it."""
    return status is not None and (status in (408, 429) or 500 <= status <= 599)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def parse_duration(value: object) -> float | None:
    """A protobuf Duration as JSON ("30s", "1.5s", or {"seconds": 30, "nanos": 0}), the form in
    which Google APIs state a requested delay inside an error body."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        return float(match["value"]) if match else None
    if isinstance(value, dict):
        try:
            return float(value.get("seconds", 0) or 0) + float(value.get("nanos", 0) or 0) / 1e9
        except (TypeError, ValueError):
            return None
    return None


def retry_after_header(headers: object) -> float | None:
    """The Retry-After of any client's header object (httpx, aiohttp, or a plain dict, whose
    keys are case-sensitive), or None when there is none or it cannot be read."""
    if not isinstance(headers, Mapping):
        return None
    try:
        value = headers.get("retry-after")
        if value is None:
            value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
        return parse_retry_after(value if isinstance(value, str) else None)
    except Exception:  # noqa: BLE001 - a header object that misbehaves must not hide the failure
        return None


def transient_status_failure(
    provider: str, status: int, sentence: str, *, retry_after: float | None
) -> TransientFailure:
    """A transient status as a failure: `rate_limited` for a 429, `<provider>_unavailable`
    otherwise, with the requested wait in the sentence so `status` shows why a row waits."""
    kind = "rate_limited" if status == 429 else f"{provider}_unavailable"
    wait = f"; retry after {retry_after:g}s" if retry_after is not None else ""
    return TransientFailure(kind, f"{sentence}{wait}", retry_after=retry_after)
