"""Failures as values with a class: the queue decides what to do from `transient` and `scope`.

`reason` is the sentence stored in `enrichment_error`: written for the person who reads
`status`, scrubbed of secrets, and short enough to group by (`status` shows the top reasons).

`scope` says whose fault it is (docs/admission.md):
- `row`: the row's own failure; it spends an attempt;
- `wait`: a per-minute quota refusal or a shed: the row goes back with its attempt given back;
- `outage`: the provider answered 5xx or not at all; the row spends an attempt unless the
  fleet has seen enough of these in a row to pause the provider;
- `systemic`: the provider cannot work for anyone (key refused, model unknown, daily quota
  spent): the provider is paused fleet-wide and the row goes back with its attempt.
"""

from __future__ import annotations

from typing import Literal

from pgqueue_enricher.redact import scrub

Scope = Literal["row", "wait", "outage", "systemic"]

MAX_REASON_CHARS = 500


class EnrichmentFailure(Exception):
    """Base class. `kind` is a short stable label for metrics and logs (e.g. `rate_limited`)."""

    transient: bool = False
    # False for a wait that is not the row's fault (a Flex shed): the attempt is given back.
    spends_attempt: bool = True

    def __init__(
        self,
        kind: str,
        reason: str,
        *,
        retry_after: float | None = None,
        scope: Scope = "row",
        provider: str | None = None,
        quota_per_minute: float | None = None,
    ) -> None:
        self.kind = kind
        self.reason = scrub(reason)[:MAX_REASON_CHARS]
        self.retry_after = retry_after
        self.scope: Scope = scope
        # Which provider's shared state the failure concerns ('gemini', 'voyage').
        self.provider = provider
        # A per-minute request quota the provider named (QuotaFailure.quotaValue), if any.
        self.quota_per_minute = quota_per_minute
        super().__init__(self.reason)

    @property
    def gives_attempt_back(self) -> bool:
        """Not the row's fault: it goes back to pending as if never claimed."""
        return self.scope in ("wait", "systemic")


class TransientFailure(EnrichmentFailure):
    """Worth another attempt later: rate limits, timeouts, 5xx, lost connections, empty answers."""

    transient = True


class PermanentFailure(EnrichmentFailure):
    """Retrying cannot help: missing or rejected crop, other 4xx, safety blocks, bad configuration."""

    transient = False
