"""Failures as values with a class: the queue decides what to do from `transient` alone.

`reason` is the sentence stored in `enrichment_error`: written for the person who reads
`status`, scrubbed of secrets, and short enough to group by (`status` shows the top reasons).
"""

from __future__ import annotations

from pgqueue_enricher.redact import scrub

MAX_REASON_CHARS = 500


class EnrichmentFailure(Exception):
    """Base class. `kind` is a short stable label for metrics and logs (e.g. `rate_limited`)."""

    transient: bool = False
    # False for a wait that is not the row's fault (a Flex shed): the attempt is given back.
    spends_attempt: bool = True

    def __init__(self, kind: str, reason: str, *, retry_after: float | None = None) -> None:
        self.kind = kind
        self.reason = scrub(reason)[:MAX_REASON_CHARS]
        self.retry_after = retry_after
        super().__init__(self.reason)


class TransientFailure(EnrichmentFailure):
    """Worth another attempt later: rate limits, timeouts, 5xx, lost connections, empty answers."""

    transient = True


class PermanentFailure(EnrichmentFailure):
    """Retrying cannot help: missing or rejected crop, other 4xx, safety blocks, bad configuration."""

    transient = False
