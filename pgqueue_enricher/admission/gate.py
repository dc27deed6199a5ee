"""The fleet-wide admission gate and pause in front of each provider, shared through Postgres.

Gemini's limits belong to the Google project, not to a worker, so what admits a call lives in
one row per provider (`pgqueue_enricher_provider_state`, sql/definitions/admission.sql) that every worker
reads and updates with short statements. The pipeline asks `admit` before each provider call:
with a limit configured or learnt from a 429 (the adaptive rate), or a pause, one statement
(`pgqueue_enricher_permit`) decides the call's permit, and the call sleeps until its slot
holding no connection. The Grant travels with the call, and its outcome comes back with it
(`succeeded`, `failed`): a quota refusal cuts the shared rate, failures that are not the row's
count toward a fleet-wide pause, a success after them ends the run or lifts the pause. With
neither a limit nor a pause, a call costs no statement at all. docs/admission.md has the design.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pgqueue_enricher.admission import provider_state
from pgqueue_enricher.admission.provider_state import RESUME_HINTS, ProviderState, pause_line, read_states
from pgqueue_enricher.aio import set_within
from pgqueue_enricher.errors import EnrichmentFailure, TransientFailure
from pgqueue_enricher.logs import get_logger
from pgqueue_enricher.providers.prompt import SYSTEM_INSTRUCTION
from pgqueue_enricher.settings import Settings

log = get_logger("pgqueue_enricher.admission.gate")

PROVIDERS = ("gemini", "voyage")
HEADROOM = 0.97  # the share of a limit admitted: room for jitter between machines
# A call waits at most this long for its slot, holding its row (the heartbeat keeps the lease);
# a later slot gives the row back, and this worker claims nothing until a slot is in sight.
MAX_HOLD_S = 60.0
REFRESH_S = 0.5  # how often a worker reads the shared state
OUTAGE_THRESHOLD = 5  # outages (5xx, timeouts) in a row across the fleet that pause the provider
RESUME_JITTER_S = 2.0  # workers other than the prober resume claiming within this, at random
# Adaptive rate: decrease factor per epoch, at most one decrease per window fleet-wide (a
# burst of refusals is one signal; random 429s naming no quota must not collapse the rate),
# start when no quota is known, floor, and the increase per admitted call: a share of the
# named quota, or without one a share of the admitted rate (at least a fixed step), which
# makes a cut good again within a few seconds at any rate.
DECREASE, MILD_DECREASE, DECREASE_WINDOW_S = 0.85, 0.95, 1.0  # mild: a limit within the named quota
START_RPM, FLOOR_RPM = 600.0, 30.0
INCREASE_SHARE, UNKNOWN_INCREASE_SHARE, INCREASE_RPM = 0.005, 0.02, 2.0
QUOTA_MEMORY_S = 3600.0  # a named quota is forgotten after this long without a cut
# The token estimate: characters per text token, and the input tokens of an image at high
# media resolution plus the prompt's fixed labels and system instruction.
CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1120 + 64 + len(SYSTEM_INSTRUCTION) // CHARS_PER_TOKEN

DbCall = Callable[..., Awaitable[Any]]


def estimate_tokens(text: str, image: bool) -> int:
    """Input tokens of a call, estimated before it; the provider's count corrects it after."""
    return len(text) // CHARS_PER_TOKEN + (IMAGE_TOKENS if image else 1)


@dataclass(frozen=True)
class Grant:
    """One call's permit: it travels with the call, and the call's outcome is reported with it."""

    provider: str
    epoch: int = 0  # the throttle epoch the call was admitted under
    tokens: int = 0  # the estimate charged to the token budget (0: none)
    probe: bool = False  # the fleet's probe of a paused provider
    # When the call was let go (monotonic): only a call begun during a pause (the probe) may
    # lift it; one in flight since before it says nothing about the provider now.
    at: float = field(default_factory=time.monotonic)


class Admission:
    """One worker's view of the shared state, and its side of every statement on it."""

    def __init__(
        self, settings: Settings, worker_id: str, db: DbCall, doorbell: asyncio.Event | None = None
    ) -> None:
        self.worker_id = worker_id
        self.db = db
        self.doorbell = doorbell
        self.limits = {
            "gemini": (settings.pass2_gemini_rpm, settings.pass2_gemini_tpm),
            "voyage": (settings.pass2_voyage_rpm, settings.pass2_voyage_tpm),
        }
        self.probe_base = settings.pass2_probe_base
        self.probe_max = max(settings.pass2_probe_max, settings.pass2_probe_base)
        self.states: dict[str, ProviderState] = {name: ProviderState(name) for name in PROVIDERS}
        self.resume_at = 0.0  # monotonic: no claim before (jittered resume, a full schedule)
        self.resumed_at: dict[str, float] = {}  # per provider: when this worker saw a pause lifted
        # Per provider: input tokens counted minus estimated, charged by the next permit.
        self.corrections: Counter[str] = Counter()
        self.calls, self.permits, self.rejected = Counter[str](), Counter[str](), Counter[str]()

    # -- shared state -----------------------------------------------------------------------

    async def start(self) -> None:
        """Write this worker's configured limits and read the state, before the first claim."""
        for provider, (rpm, tpm) in self.limits.items():
            await self.db(provider_state.configure, provider, rpm, tpm)
        await self.refresh()

    async def refresh(self) -> None:
        before = self.states
        self.states = {**before, **await self.db(read_states, attempts=2)}
        for provider, state in self.states.items():
            if state.quota_rpm is not None and (state.last_cut_s or 0.0) >= QUOTA_MEMORY_S:
                await self._forget_quota(state)
            was = before.get(provider)
            if was is not None and was.paused and not state.paused:
                self.resumed_at[provider] = time.monotonic()
                self._hold_claims(random.uniform(0, RESUME_JITTER_S))  # noqa: S311 - not security
            if state.probe_due and self.doorbell is not None:
                self.doorbell.set()

    async def _forget_quota(self, state: ProviderState) -> None:
        forgotten = await self.db(provider_state.forget_quota, state.provider, QUOTA_MEMORY_S)
        self.states[state.provider] = replace(state, quota_rpm=None)
        if forgotten is not None:  # this worker's statement forgot it: say so once for the fleet
            log.info(
                "provider_quota_forgotten",
                provider=state.provider,
                quota_rpm=forgotten["quota_rpm"],
                detail=f"no cut for {QUOTA_MEMORY_S:.0f} s; the adaptive rate may grow until a refusal names it anew",
            )

    async def run(self, closing: asyncio.Event) -> None:
        """Side duty: keep the cached state fresh (pauses begun or lifted by other workers)."""
        while not await set_within(closing, REFRESH_S):
            try:
                await self.flush()
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - a missed refresh only delays what we learn
                log.debug("admission_refresh_failed", reason=f"{type(exc).__name__}")
        await self.flush()

    async def flush(self) -> None:
        """Charge the token corrections no permit has carried yet to the shared row."""
        for provider in PROVIDERS:
            if self.corrections[provider]:
                await self._permit(provider, None)

    # -- claiming ---------------------------------------------------------------------------

    def paused(self) -> list[ProviderState]:
        return [state for state in self.states.values() if state.paused]

    def claimable(self, free: int, in_flight: int) -> int:
        """How many rows to claim now: all free slots; none while a provider is paused, but one
        row to probe with once its probe is due and this worker has nothing in flight; none
        before `resume_at` (a jittered resume, or a schedule taken further than MAX_HOLD_S)."""
        paused = self.paused()
        if paused:
            return 1 if free > 0 and in_flight == 0 and any(s.probe_due for s in paused) else 0
        return 0 if time.monotonic() < self.resume_at else max(free, 0)

    def _hold_claims(self, delay: float) -> None:
        self.resume_at = max(self.resume_at, time.monotonic() + delay)
        if self.doorbell is not None:
            asyncio.get_running_loop().call_later(delay, self.doorbell.set)

    # -- one call ---------------------------------------------------------------------------

    async def admit(self, provider: str, text: str, image: bool = False) -> Grant:
        """The permit of one call of `provider` with input `text` (and an image): sleeps until
        the call's slot holding no connection, or raises a wait failure."""
        state = self.states.get(provider)
        if state is None:
            return Grant(provider)  # a provider the gate does not know (local): never gated
        self.calls[provider] += 1
        if state.paused and not state.probe_due:
            raise self._paused_failure(state)
        if not (state.gated or state.paused):
            return Grant(provider, state.epoch)
        tokens = estimate_tokens(text, image)
        row = await self._permit(provider, tokens)
        if row is None:
            return Grant(provider, state.epoch)
        if row["paused"] and not row["probe"]:
            await self.refresh()  # paused elsewhere, or the probe taken: learn the reason
            raise self._paused_failure(self.states[provider])
        wait = max(float(row["wait_s"]), 0.0)
        if not row["reserved"]:
            self._hold_claims(wait - MAX_HOLD_S)
            raise TransientFailure(
                "gate_wait",
                f"the fleet's {provider} budget is taken for the next {wait:.0f}s (admission gate)",
                retry_after=wait,
                scope="wait",
                provider=provider,
            )
        if row["probe"]:
            log.info("provider_probe", provider=provider, paused_kind=state.paused_kind)
        await asyncio.sleep(wait)
        return Grant(provider, int(row["epoch"]), tokens, bool(row["probe"]))

    async def _permit(self, provider: str, tokens: int | None) -> Any:
        """The permit statement, charging this worker's token corrections with it."""
        correction, self.corrections[provider] = self.corrections[provider], 0
        args = (
            tokens,
            correction,
            MAX_HOLD_S,
            HEADROOM,
            self._increase(provider),
            self.worker_id,
            self.probe_max,
        )
        try:
            row = await self.db(provider_state.permit, provider, *args)
        except BaseException:
            self.corrections[provider] += correction  # not known to be charged: charge it later
            raise
        self.permits[provider] += tokens is not None
        return row

    def _paused_failure(self, state: ProviderState) -> TransientFailure:
        return TransientFailure(
            "provider_paused",
            f"{state.provider} is paused for the whole fleet ({state.paused_kind}): {state.paused_reason}",
            scope="systemic",
            provider=state.provider,
        )

    def _increase(self, provider: str) -> float:
        """The adaptive rate's increase per admitted call, in requests/min: without a named
        quota it grows with the rate, so that a cut is made good within seconds."""
        state = self.states[provider]
        if state.quota_rpm:
            return INCREASE_SHARE * state.quota_rpm
        return max(INCREASE_RPM, UNKNOWN_INCREASE_SHARE * (state.admitted_rpm or START_RPM))

    # -- outcomes ---------------------------------------------------------------------------

    async def succeeded(self, grant: Grant, tokens_used: int | None) -> None:
        state = self.states.get(grant.provider)
        if state is None:
            return
        if state.tpm_limit is not None and tokens_used is not None and grant.tokens:
            self.corrections[grant.provider] += tokens_used - grant.tokens
        await self._record_success(grant)

    async def _record_success(self, grant: Grant) -> None:
        """After failures or in a pause: the run of failures ends, and a pause is lifted by a
        call let go during it (the probe)."""
        state = self.states[grant.provider]
        if not (state.consecutive_failures or state.paused or grant.probe):
            return
        row = await self.db(provider_state.succeed, grant.provider, time.monotonic() - grant.at)
        if row is None:
            return  # a call from before the pause answered: the pause stands (the probe decides)
        if row["resumed"]:
            self.resumed_at[grant.provider] = time.monotonic()
            log.warning(
                "provider_resumed",
                provider=grant.provider,
                paused_kind=row["paused_kind"],
                paused_s=round(float(row["paused_s"] or 0.0), 1),
            )
        await self.refresh()
        self.resume_at = 0.0  # the prober's worker resumes at once
        if self.doorbell is not None:
            self.doorbell.set()

    async def failed(self, grant: Grant, failure: EnrichmentFailure) -> None:
        """Record a failure in the shared state; may re-scope it (an outage that paused)."""
        provider = grant.provider
        state = self.states.get(provider)
        if state is None:
            return
        if failure.scope == "row":  # the provider answered: it works, whatever the row's trouble
            await self._record_success(grant)
            return
        if failure.scope == "wait":
            await self._throttle(grant, failure)
            return
        if grant.at < self.resumed_at.get(provider, float("-inf")):
            # The mirror of the rule for successes: a call let go before the pause was lifted
            # (in flight through the outage) that fails now says nothing about the provider
            # since the probe succeeded, and must not count toward a new pause. It was the
            # outage's fault, not the row's: the row goes back with its attempt, due at once.
            log.debug("provider_failure_stale", provider=provider, kind=failure.kind)
            failure.scope, failure.retry_after = "systemic", None
            return
        first_probe = self.probe_base
        if failure.kind == "daily_quota" and failure.retry_after:
            first_probe = max(failure.retry_after, self.probe_base)
        row = await self.db(
            provider_state.fail,
            provider,
            1 if failure.scope == "systemic" else OUTAGE_THRESHOLD,
            failure.kind,
            failure.reason,
            first_probe,
            self.probe_base,
        )
        if row["paused"]:
            failure.scope, failure.retry_after = "systemic", None
            self.states[provider] = replace(
                state,
                paused_kind=state.paused_kind or failure.kind,
                paused_reason=state.paused_reason or failure.reason,
                paused_since=state.paused_since or datetime.now().astimezone(),
                next_probe_in_s=row["next_probe_in_s"],
                read_at=time.monotonic(),
            )
        else:
            self.states[provider] = replace(state, consecutive_failures=int(row["consecutive_failures"]))
        if row["started"]:
            log.warning(
                "provider_paused",
                provider=provider,
                kind=failure.kind,
                reason=failure.reason,
                next_probe_in_s=round(float(row["next_probe_in_s"] or 0.0), 1),
                detail="no worker claims until a probe succeeds",
                lift_by_hand=RESUME_HINTS.get(provider),
            )

    async def _throttle(self, grant: Grant, failure: EnrichmentFailure) -> None:
        """A per-minute quota refusal: the shared rate is cut, and the row waits for a slot."""
        self.rejected[grant.provider] += 1
        # A refusal naming the quota is a clear signal (cut once per epoch); an unnamed 429
        # may be noise or overload, even once a quota is known: at most one cut per window.
        window = 0.0 if failure.quota_per_minute else DECREASE_WINDOW_S
        factors = (DECREASE, START_RPM, FLOOR_RPM, MILD_DECREASE, window)
        row = await self.db(
            provider_state.throttle, grant.provider, grant.epoch, failure.quota_per_minute, *factors
        )
        self.states[grant.provider] = replace(
            self.states[grant.provider], admitted_rpm=row["admitted_rpm"], epoch=int(row["throttle_epoch"])
        )
        if failure.retry_after is None:
            rpm = row["admitted_rpm"] or START_RPM
            failure.retry_after = max(float(row["next_slot_s"] or 0.0), 60.0 / rpm)

    # -- observability ----------------------------------------------------------------------

    def render_metrics(self) -> list[str]:
        def family(name: str, kind: str, values: dict[str, float | None]) -> list[str]:
            shown = [
                f"pgqe_provider_{name}{{{labels}}} {v:g}" for labels, v in values.items() if v is not None
            ]
            return [f"# TYPE pgqe_provider_{name} {kind}", *shown]

        states = self.states.items()
        return [
            *family("calls_total", "counter", {f'provider="{p}"': self.calls[p] for p in PROVIDERS}),
            *family("permits_total", "counter", {f'provider="{p}"': self.permits[p] for p in PROVIDERS}),
            *family("rejected_total", "counter", {f'provider="{p}"': self.rejected[p] for p in PROVIDERS}),
            *family(
                "rejected_per_minute", "gauge", {f'provider="{p}"': s.rejected_per_minute for p, s in states}
            ),
            *family("admitted_rpm", "gauge", {f'provider="{p}"': _admitted(s) for p, s in states}),
            *family(
                "paused",
                "gauge",
                {f'provider="{p}",kind="{s.paused_kind or ""}"': int(s.paused) for p, s in states},
            ),
        ]

    def pause_reason(self) -> str | None:
        """Why the fleet is paused, for /healthz and the registry (Worker.provider_pause)."""
        lines = [pause_line(state) for state in self.paused()]
        return "; ".join(lines) if lines else None


def _admitted(state: ProviderState) -> float | None:
    """The rate the gate admits (requests/min), None when nothing limits it."""
    rates = [r for r in (state.rpm_limit, state.admitted_rpm) if r is not None]
    return min(rates) * HEADROOM if rates else None
