"""The fleet-wide admission gate and pause in front of each provider, shared through Postgres.

Gemini's limits belong to the Google project, not to a worker, so the state that admits a
call lives in one row per provider (`pgqueue_enricher_provider_state`, sql/admission.sql)
that every worker of every machine reads and updates with short statements:

- the gate: with a limit configured (PASS2_GEMINI_RPM/TPM, PASS2_VOYAGE_RPM/TPM) or learnt
  from a 429 (the adaptive rate), each call first reserves its own slot and then sleeps until
  it, holding no database connection, so waiters start in slot order; a describe call's slot
  is drawn by the claim statement of its row (`Admission.claim`), an embedding call's by its
  row's checkpoint (`Admission.checkpoint`), other calls of one worker
  that ask while its previous permit statement runs share the next one, and token corrections
  ride along with either (permits.py says why and what that keeps); with neither limit, and
  nothing paused, a call costs no statement at all;
- adaptive: a quota refusal lowers the shared rate (multiplicative decrease, once per
  epoch) and every admitted call raises it a little (additive increase), capped by the quota
  the provider names in its QuotaFailure;
- the pause: a refused key, an unknown model, a spent daily quota, or OUTAGE_THRESHOLD
  outages in a row across the fleet pause the provider; no worker claims while a provider
  is paused, one worker at a time probes with a single row after a doubling backoff, and a
  success lifts the pause for everyone (the others resume after a random delay, so the fleet
  does not come back in one burst).

The worker wraps its providers with `Admission.wrap`, asks `claimable` before each claim,
and gives rows back with their attempt when a failure `gives_attempt_back`. The rows as read,
the statements on them and their `status` lines are provider_state.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import asyncpg

from pgqueue_enricher.admission import provider_state
from pgqueue_enricher.admission.permits import Grant, ProviderPermits, SingleFlight
from pgqueue_enricher.admission.provider_state import (
    RESUME_HINTS,
    Executor,
    ProviderState,
    pause_line,
    read_states,
)
from pgqueue_enricher.errors import EnrichmentFailure, TransientFailure
from pgqueue_enricher.logs import get_logger
from pgqueue_enricher.providers.factory import Providers
from pgqueue_enricher.providers.types import Embedding, EnrichmentInput, EnrichmentOutput
from pgqueue_enricher.queue import statements
from pgqueue_enricher.settings import Settings

log = get_logger("pgqueue_enricher.admission.gate")

PROVIDERS = ("gemini", "voyage")
# The gate admits this share of a limit: room for clock and network jitter between machines.
HEADROOM = 0.97
# A row waits at most this long for its permit while claimed; a later slot gives it back.
MAX_HOLD_S = 20.0
# How often a worker reads the shared state (pauses begun or lifted elsewhere, the adaptive rate).
REFRESH_S = 0.5
# Outages (5xx, timeouts, unreachable) in a row across the fleet that pause the provider.
OUTAGE_THRESHOLD = 5
# Workers other than the prober resume claiming within this many seconds, at random.
RESUME_JITTER_S = 2.0
# Adaptive rate: decrease factor per epoch, at most one decrease per window fleet-wide (a
# burst of refusals is one signal; random 429s naming no quota must not collapse the rate),
# start when no quota is known, floor, and the increase per admitted call: a share of the
# named quota, or without one a share of the admitted rate (at least a fixed step), which
# makes a cut good again within a few seconds at any rate.
DECREASE = 0.85
MILD_DECREASE = 0.95  # a configured limit within the provider's named quota
DECREASE_WINDOW_S = 1.0
START_RPM = 600.0  # a quota that names itself replaces it; unnamed 429s are overload or noise
FLOOR_RPM = 30.0
INCREASE_SHARE = 0.005
UNKNOWN_INCREASE_SHARE = 0.02
INCREASE_RPM = 2.0
# A quota the provider named is forgotten after this long without a cut of the adaptive rate
# (sql/admission.sql provider_state_forget_quota says why): an hour costs a fleet whose quota
# was raised at most an hour below it, and one that runs at its quota is cut far more often.
QUOTA_MEMORY_S = 3600.0
# Input tokens of an image at high media resolution, characters per text token, and the
# tokens of the prompt's fixed labels (describe_tokens; the claim's SQL estimates the same).
IMAGE_TOKENS = 1120
CHARS_PER_TOKEN = 4
LABEL_TOKENS = 64

DbCall = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Permit:
    provider: str
    epoch: int
    tokens: int
    slot: datetime | None = None  # the call's slot in the shared schedule (None: not gated)
    # When the call was let go (monotonic): only a call begun during a pause (the probe) may
    # lift it; one in flight since before it says nothing about the provider now.
    at: float = field(default_factory=time.monotonic)


# The pointer the running task works on (Pipeline.process sets it): a gated call finds by it
# the grant a statement of its pointer drew for it in advance (the claim for the describe
# call, the checkpoint for the embedding call), without the providers' signatures knowing.
current_pointer: ContextVar[str | None] = ContextVar("pgqe_current_pointer", default=None)


def describe_tokens(item: EnrichmentInput, instruction_chars: int) -> int:
    """Input tokens of a describe call, estimated before it: the image plus the prompt text."""
    chars = instruction_chars + sum(
        len(text or "")
        for text in (item.sheet_reflection, item.page_name, item.discipline_name, item.pointer_title)
    )
    return IMAGE_TOKENS + chars // CHARS_PER_TOKEN + LABEL_TOKENS


def embed_tokens(text: str) -> int:
    """Input tokens of an embedding call, estimated before it."""
    return len(text) // CHARS_PER_TOKEN + 1


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
        # (provider, pointer id once claimed) while this worker holds the fleet's probe.
        self.probe: tuple[str, uuid.UUID | None] | None = None
        self.resume_at = 0.0  # monotonic: no claim before (jittered resume after a pause)
        # Per provider, when this worker last saw a pause lifted (monotonic): a failure of a
        # call let go before it is stale (see `failed`).
        self.resumed_at: dict[str, float] = {}
        self.calls: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.waited: Counter[str] = Counter()
        self.available = False  # the table exists (a database migrated to 0007 or later)
        self.permit_function = False  # pgqueue_enricher_acquire_permits is callable (0011 or later)
        # Per provider: the permit statements, coalesced, and the success bookkeeping, likewise.
        self.permits = {name: ProviderPermits(self._charger(name)) for name in PROVIDERS}
        self.successes = {name: SingleFlight(self._succeeder(name)) for name in PROVIDERS}
        # The gated providers (set by `wrap`): the describer's permits ride on the claim
        # (`claim`), the embedder's on the checkpoint (`checkpoint`), and each grant waits here,
        # by (provider, pointer id) with when it came, for that pointer's call.
        self.describer: GatedDescriber | None = None
        self.embedder: GatedEmbedder | None = None
        self.advance: dict[tuple[str, str], tuple[Grant, float]] = {}

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Write this worker's configured limits and read the state, before the first claim."""
        try:
            for provider, (rpm, tpm) in self.limits.items():
                await self.db(provider_state.configure, provider, rpm, tpm)
            await self.refresh()
            self.permit_function = await self.db(provider_state.permit_function_callable)
            self.available = True
        except (asyncpg.UndefinedTableError, asyncpg.InsufficientPrivilegeError) as exc:
            log.warning(
                "admission_unavailable",
                reason=type(exc).__name__,
                detail="pgqueue_enricher_provider_state is missing or not writable by this role (run "
                "`pgqueue-enricher migrate`, grant the table); calls are not gated and pauses not shared",
            )

    async def refresh(self) -> None:
        before = self.states
        self.states = {**before, **await self.db(read_states, attempts=2)}
        for provider, state in self.states.items():
            last_cut_s = state.last_cut_s
            if state.quota_rpm is not None and last_cut_s is not None and last_cut_s >= QUOTA_MEMORY_S:
                await self._forget_quota(state)
            was = before.get(provider)
            if was is not None and was.paused and not state.paused:
                self.resumed_at[provider] = time.monotonic()
                self._resume_claiming(jitter=True)
            if state.probe_due and self.doorbell is not None:
                self.doorbell.set()

    async def _forget_quota(self, state: ProviderState) -> None:
        forgotten = await self.db(provider_state.forget_quota, state.provider, QUOTA_MEMORY_S)
        self.states[state.provider] = replace(state, quota_rpm=None)
        if forgotten is not None:  # this worker's statement forgot it: say so once for the fleet
            log.info(
                "provider_quota_forgotten",
                provider=state.provider,
                quota_rpm=forgotten,
                detail=f"no cut for {QUOTA_MEMORY_S:.0f} s; the adaptive rate may grow until a refusal names it anew",
            )

    async def run(self, closing: asyncio.Event) -> None:
        """Side duty: keep the cached state fresh (pauses begun or lifted by other workers)."""
        from pgqueue_enricher.aio import set_within

        while self.available and not await set_within(closing, REFRESH_S):
            try:
                await self.flush()
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - a missed refresh only delays what we learn
                log.debug("admission_refresh_failed", reason=f"{type(exc).__name__}")
        if self.available:
            with contextlib.suppress(Exception):  # the last corrections, while the pool is open
                await self.flush()

    async def flush(self) -> None:
        """Charge the token corrections no permit statement has carried yet to the shared row."""
        for permits in self.permits.values():
            await permits.flush()

    def wrap(self, providers: Providers) -> Providers:
        """The same providers, with the gate in front of the ones it knows (Gemini, Voyage)."""
        describer, embedder = providers.describer, providers.embedder
        if describer.name in PROVIDERS:
            describer = self.describer = GatedDescriber(describer, self)  # type: ignore[assignment]
        if embedder.name in PROVIDERS:
            embedder = self.embedder = GatedEmbedder(embedder, self)  # type: ignore[assignment]
        return replace(providers, describer=describer, embedder=embedder)

    # -- claiming -------------------------------------------------------------------------

    def paused(self) -> list[ProviderState]:
        return [state for state in self.states.values() if state.paused]

    async def claimable(self, free: int, in_flight: Iterable[uuid.UUID]) -> int:
        """How many rows to claim now: all free slots, none while a provider is paused, or one
        row when this worker has just taken the fleet's probe of a paused provider."""
        if free <= 0 or not self.available:
            return free
        paused = self.paused()
        if not paused:
            self.probe = None
            return 0 if time.monotonic() < self.resume_at else free
        if self.probe is not None and self.probe[1] in set(in_flight):
            return 0  # our probe is still running
        self.probe = None
        for state in paused:
            if state.probe_due and await self.db(
                provider_state.take_probe, state.provider, self.worker_id, self.probe_max
            ):
                log.info("provider_probe", provider=state.provider, paused_kind=state.paused_kind)
                self.probe = (state.provider, None)
                return 1
        return 0

    async def claim(self, limit: int, worker_id: str, lease: float) -> list[statements.ClaimedPointer]:
        """Claim up to `limit` rows; when the describer is gated, with each row's describe permit
        drawn by the claim statement itself, so that the call costs no statement of its own.

        Why the claim: it is the statement right before the call (with only the crop's
        download between), so the slot is taken when it is needed, as the docstring of
        permits.py asks, and it saves a database round trip per pointer, which was a
        quarter of the queue's time per pointer with a limit set. Not while probing (the
        probe passes the gate) or paused, and not without 0011's function.
        """
        provider = self._carried(self.describer)
        if provider is None or self.describer is None:
            return await self.db(statements.claim, limit, worker_id, lease, attempts=1)
        instruction_chars = self.describer.instruction_chars

        async def claim_with_permits(correction: int) -> list[asyncpg.Record]:
            return await self.db(
                statements.claim_with_permits,
                limit,
                worker_id,
                lease,
                *self._permit_args(provider, correction),
                IMAGE_TOKENS + LABEL_TOKENS,
                instruction_chars,
                CHARS_PER_TOKEN,
                attempts=1,
            )

        rows = await self._ride(provider, claim_with_permits)
        if rows is None:
            return await self.db(statements.claim, limit, worker_id, lease, attempts=1)
        pointers = [statements.claimed_pointer(row) for row in rows]
        await self._hold(provider, [pointer.id for pointer in pointers], rows)
        return pointers

    def checkpoint_carries_permit(self) -> bool:
        """Whether `checkpoint` draws the embedding call's permit (the call must then wait
        for the write)."""
        return self._carried(self.embedder) is not None

    async def checkpoint(
        self,
        db: Executor,
        fence: statements.Fence,
        description: str,
        references: list[str],
        metadata: dict[str, Any],
        embed_text: str,
    ) -> bool:
        """The checkpoint (the pipeline's fenced write: `db` is its pool); when the embedder is
        gated, with the permit of the embedding of `embed_text` drawn by the same statement
        and kept for that call, so that it costs no statement of its own (the Voyage permit
        had been the one statement per pointer left beside the raw loop's three)."""
        provider = self._carried(self.embedder)
        if provider is None:
            return await statements.checkpoint(db, fence, description, references, metadata)

        async def checkpoint_with_permit(correction: int) -> list[asyncpg.Record]:
            row = await statements.checkpoint_with_permit(
                db,
                fence,
                description,
                references,
                metadata,
                *self._permit_args(provider, correction),
                embed_tokens(embed_text),
            )
            return [] if row is None else [row]

        rows = await self._ride(provider, checkpoint_with_permit)
        if rows is None:
            return await statements.checkpoint(db, fence, description, references, metadata)
        if not rows:
            return False  # the lease was lost: nothing written, nothing drawn
        await self._hold(provider, [fence.pointer_id], rows)
        return True

    def _permit_args(self, provider: str, correction: int) -> tuple[Any, ...]:
        """The permit function's arguments before the calls' tokens, as a statement that draws
        permits for the call after it passes them."""
        return (provider, MAX_HOLD_S, HEADROOM, self._increase(provider), correction)

    async def _ride(
        self, provider: str, statement: Callable[[int], Awaitable[list[asyncpg.Record]]]
    ) -> list[asyncpg.Record] | None:
        """The rows of a statement that draws `provider`'s permits (ProviderPermits.ride), or
        None when the function went away under a running worker (downgraded below 0011): the
        caller then runs its plain statement, and no statement draws permits from here on."""
        try:
            return await self.permits[provider].ride(statement)
        except asyncpg.UndefinedFunctionError:
            self.permit_function = False
            return None

    def _carried(self, gated: GatedDescriber | GatedEmbedder | None) -> str | None:
        """The provider whose permit the statement before its call may draw: gated, with 0011's
        function, and neither paused nor probed (the probe passes the gate)."""
        state = self.states.get(gated.name) if gated is not None else None
        if (
            state is None
            or not (self.available and self.permit_function and state.gated)
            or state.paused
            or self.probe is not None
        ):
            return None
        return state.provider

    async def _hold(self, provider: str, pointer_ids: list[uuid.UUID], rows: list[asyncpg.Record]) -> None:
        """Keep the grants a claim or checkpoint drew, each for its pointer's next call."""
        received = time.monotonic()
        for pointer_id, row, grant in zip(
            pointer_ids, rows, await self._granted(rows, "permit_"), strict=True
        ):
            if row["permit_reserved"] is not None:  # NULL: the provider has no row, nothing drawn
                self.advance[(provider, str(pointer_id))] = (grant, received)

    def settled(self, pointer_id: uuid.UUID) -> None:
        """The row's attempt ended: a grant its call did not use (a reused checkpoint, an
        earlier failure) goes unused."""
        for provider in PROVIDERS:
            self.advance.pop((provider, str(pointer_id)), None)

    def claimed(self, pointer_ids: list[uuid.UUID]) -> None:
        if self.probe is not None and self.probe[1] is None and pointer_ids:
            self.probe = (self.probe[0], pointer_ids[0])

    def _resume_claiming(self, *, jitter: bool) -> None:
        delay = random.uniform(0, RESUME_JITTER_S) if jitter else 0.0  # noqa: S311 - not security
        self.resume_at = time.monotonic() + delay
        if self.doorbell is not None:
            asyncio.get_running_loop().call_later(delay, self.doorbell.set)

    # -- one call -------------------------------------------------------------------------

    async def admit(self, provider: str, tokens: int) -> Permit:
        """Wait for this call's slot (holding no connection), or raise a wait failure. A grant
        drawn in advance for the task's pointer (`current_pointer`), if any, is its permit."""
        pointer_id = current_pointer.get()
        advance = self.advance.pop((provider, pointer_id), None) if pointer_id is not None else None
        state = self.states[provider]
        self.calls[provider] += 1
        probing = self.probe is not None and self.probe[0] == provider
        if state.paused and not probing:
            raise TransientFailure(
                "provider_paused",
                f"{provider} is paused for the whole fleet ({state.paused_kind}): {state.paused_reason}",
                scope="systemic",
                provider=provider,
            )
        if not self.available or not state.gated or probing:
            return Permit(provider, state.epoch, 0)
        if advance is not None:
            grant, received = advance
            wait = max(grant.wait_s - (time.monotonic() - received), 0.0)
        else:
            grant = await self.permits[provider].reserve(tokens)
            wait = max(grant.wait_s, 0.0)
        if grant.paused:
            raise TransientFailure(
                "provider_paused",
                f"{provider} is paused for the whole fleet",
                scope="systemic",
                provider=provider,
            )
        if not grant.reserved:
            self.waited[provider] += 1
            raise TransientFailure(
                "gate_wait",
                f"the fleet's {provider} budget is taken for the next {wait:.0f}s (admission gate)",
                retry_after=wait,
                scope="wait",
                provider=provider,
            )
        if wait > 0:
            await asyncio.sleep(wait)
        return Permit(provider, grant.epoch, tokens, grant.slot)

    def _charger(self, provider: str) -> Callable[[list[int], int], Awaitable[list[Grant]]]:
        async def charge(asks: list[int], correction: int) -> list[Grant]:
            """One permit statement: the slots of `asks`, after charging `correction` tokens."""
            args = (provider, asks, MAX_HOLD_S, HEADROOM, self._increase(provider), correction)
            try:
                rows = await self.db(provider_state.acquire_batch, *args, self.permit_function)
            except asyncpg.UndefinedFunctionError:  # downgraded below 0011 under a running worker
                self.permit_function = False
                rows = await self.db(provider_state.acquire_batch, *args, False)
            return await self._granted(rows)

        return charge

    async def _granted(self, rows: list[asyncpg.Record], prefix: str = "") -> list[Grant]:
        """The grants in rows of a permit statement (`prefix`: their columns' names in the
        claim's); a provider paused elsewhere is learnt about once for the batch."""
        grants = [
            Grant(
                reserved=bool(row[f"{prefix}reserved"]),
                wait_s=float(row[f"{prefix}wait_s"] or 0.0),
                slot=row[f"{prefix}slot"],
                paused=bool(row[f"{prefix}paused"]),
                epoch=int(row[f"{prefix}epoch"]),
            )
            for row in rows
        ]
        if any(grant.paused for grant in grants):
            await self.refresh()  # paused elsewhere: learn the reason
        return grants

    def _increase(self, provider: str) -> float:
        """The adaptive rate's increase per admitted call, in requests/min."""
        state = self.states[provider]
        if state.quota_rpm:
            return INCREASE_SHARE * state.quota_rpm
        # No quota named: grow with the rate, so that a cut is made good within seconds.
        return max(INCREASE_RPM, UNKNOWN_INCREASE_SHARE * (state.admitted_rpm or START_RPM))

    async def succeeded(self, permit: Permit, tokens_used: int | None) -> None:
        state = self.states[permit.provider]
        if not self.available:
            return
        if state.tpm_limit is not None and tokens_used is not None and permit.tokens:
            # No statement of its own: the next permit statement (or the refresh loop) charges it.
            self.permits[permit.provider].correct(tokens_used - permit.tokens)
        if state.consecutive_failures or state.paused:
            await self._succeed(permit)

    async def _succeed(self, permit: Permit) -> None:
        """The run of failures ends (and a pause is lifted): one statement for the successes that
        came while the last one ran."""
        await self.successes[permit.provider].submit(permit.at)

    def _succeeder(self, provider: str) -> Callable[[list[float]], Awaitable[list[None]]]:
        async def succeed(let_go_at: list[float]) -> list[None]:
            # The youngest call of the batch speaks for it: if it began during the pause (the
            # probe), the pause may be lifted; older ones alone may not.
            await self._record_success(provider, time.monotonic() - max(let_go_at))
            return [None] * len(let_go_at)

        return succeed

    async def _record_success(self, provider: str, call_age_s: float) -> None:
        row = await self.db(provider_state.succeed, provider, call_age_s)
        if row is not None and row["paused"]:
            return  # a call from before the pause answered: the pause stands (the probe decides)
        if self.states[provider].paused or (row is not None and row["resumed"]):
            self.resumed_at[provider] = time.monotonic()
        self.states[provider] = replace(
            self.states[provider],
            consecutive_failures=0,
            paused_kind=None,
            paused_reason=None,
            paused_since=None,
            next_probe_at=None,
            next_probe_in_s=None,
        )
        if row is not None and row["resumed"]:
            log.warning(
                "provider_resumed",
                provider=provider,
                paused_kind=row["paused_kind"],
                paused_s=round(float(row["paused_s"] or 0.0), 1),
            )
        self.probe = None
        self._resume_claiming(jitter=False)

    async def failed(self, permit: Permit, failure: EnrichmentFailure) -> None:
        """Record a failure in the shared state; may re-scope it (an outage that paused)."""
        provider = permit.provider
        if not self.available:
            return
        if failure.scope == "row":
            # The provider answered: it works, whatever the row's trouble.
            if self.states[provider].consecutive_failures or self.states[provider].paused:
                await self._succeed(permit)
            return
        if failure.scope == "wait":
            self.rejected[provider] += 1
            row = await self.db(
                provider_state.throttle,
                provider,
                permit.epoch,
                failure.quota_per_minute,
                DECREASE,
                START_RPM,
                FLOOR_RPM,
                MILD_DECREASE,
                # A refusal naming the quota is a clear signal (cut once per epoch); an unnamed
                # 429 may be noise or overload, even once a quota is known (then it used to
                # cut once per epoch too, and random 429s held the soak's fleet at 0.66 of the
                # quota): at most one cut per window.
                0.0 if failure.quota_per_minute else DECREASE_WINDOW_S,
            )
            self.states[provider] = replace(
                self.states[provider], admitted_rpm=row["admitted_rpm"], epoch=int(row["throttle_epoch"])
            )
            if failure.retry_after is None:
                rpm = row["admitted_rpm"] or START_RPM
                failure.retry_after = max(float(row["next_slot_s"] or 0.0), 60.0 / rpm)
            return
        if permit.at < self.resumed_at.get(provider, float("-inf")):
            # The mirror of the rule for successes: a call let go before the pause was lifted
            # (in flight through the outage) that fails now says nothing about the provider
            # since the probe succeeded, and must not count toward a new pause. The soak saw a
            # pause of its own start from such timeouts. It was the outage's fault, not the
            # row's: the row goes back with its attempt, due at once.
            log.debug("provider_failure_stale", provider=provider, kind=failure.kind)
            failure.scope, failure.retry_after = "systemic", None
            return
        systemic = failure.scope == "systemic"
        first_probe = self.probe_base
        if failure.kind == "daily_quota" and failure.retry_after:
            first_probe = max(failure.retry_after, self.probe_base)
        row = await self.db(
            provider_state.fail,
            provider,
            1 if systemic else OUTAGE_THRESHOLD,
            failure.kind,
            failure.reason,
            first_probe,
            self.probe_base,
        )
        if self.probe is not None and self.probe[0] == provider:
            self.probe = None
        if row["paused"]:
            failure.scope = "systemic"
            failure.retry_after = None
            self.states[provider] = replace(
                self.states[provider],
                paused_kind=self.states[provider].paused_kind or failure.kind,
                paused_reason=self.states[provider].paused_reason or failure.reason,
                paused_since=self.states[provider].paused_since or datetime.now().astimezone(),
                next_probe_in_s=row["next_probe_in_s"],
                read_at=time.monotonic(),
            )
        else:
            self.states[provider] = replace(
                self.states[provider], consecutive_failures=int(row["consecutive_failures"])
            )
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

    # -- observability --------------------------------------------------------------------

    def render_metrics(self) -> list[str]:
        lines = [
            "# TYPE pgqe_provider_calls_total counter",
            *(f'pgqe_provider_calls_total{{provider="{p}"}} {self.calls[p]}' for p in PROVIDERS),
            # Permits drawn (by permit statements, or by the claim for Gemini) and the permit
            # statements they cost: calls per statement is their ratio.
            "# TYPE pgqe_provider_permits_total counter",
            *(
                f'pgqe_provider_permits_total{{provider="{p}"}} {self.permits[p].permits + self.permits[p].carried}'
                for p in PROVIDERS
            ),
            "# TYPE pgqe_provider_permit_statements_total counter",
            *(
                f'pgqe_provider_permit_statements_total{{provider="{p}"}} {self.permits[p].statements}'
                for p in PROVIDERS
            ),
            "# TYPE pgqe_provider_rejected_total counter",
            *(f'pgqe_provider_rejected_total{{provider="{p}"}} {self.rejected[p]}' for p in PROVIDERS),
            "# TYPE pgqe_provider_rejected_per_minute gauge",
            *(
                f'pgqe_provider_rejected_per_minute{{provider="{p}"}} {s.rejected_per_minute:g}'
                for p, s in self.states.items()
            ),
            "# TYPE pgqe_provider_admitted_rpm gauge",
            *(
                f'pgqe_provider_admitted_rpm{{provider="{p}"}} {_admitted(s):g}'
                for p, s in self.states.items()
                if _admitted(s) is not None
            ),
            "# TYPE pgqe_provider_paused gauge",
            *(
                f'pgqe_provider_paused{{provider="{p}",kind="{s.paused_kind or ""}"}} {int(s.paused)}'
                for p, s in self.states.items()
            ),
        ]
        return lines

    def pause_reason(self) -> str | None:
        """The Health hook (Worker.provider_pause): why the fleet is paused, for /healthz and the registry."""
        lines = [pause_line(state) for state in self.paused()]
        return "; ".join(lines) if lines else None


def _admitted(state: ProviderState) -> float | None:
    """The rate the gate admits (requests/min), None when nothing limits it."""
    rates = [r for r in (state.rpm_limit, state.admitted_rpm) if r is not None]
    return min(rates) * HEADROOM if rates else None


# -- the wrappers -----------------------------------------------------------------------------


class GatedDescriber:
    """The describer behind the gate: a permit before the call, the outcome into the state after."""

    def __init__(self, inner: Any, admission: Admission) -> None:
        self._inner = inner
        self._admission = admission
        self.name = inner.name
        from pgqueue_enricher.providers.prompt import SYSTEM_INSTRUCTION

        self.instruction_chars = len(SYSTEM_INSTRUCTION)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def describe(self, item: EnrichmentInput) -> EnrichmentOutput:
        tokens = describe_tokens(item, self.instruction_chars)
        permit = await self._admission.admit(self.name, tokens)
        try:
            output = await self._inner.describe(item)
        except EnrichmentFailure as failure:
            await self._admission.failed(permit, failure)
            raise
        usage = output.metadata.get("usage") or {}
        used = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        await self._admission.succeeded(permit, used if isinstance(used, int) else None)
        return output

    async def aclose(self) -> None:
        await self._inner.aclose()


class GatedEmbedder:
    def __init__(self, inner: Any, admission: Admission) -> None:
        self._inner = inner
        self._admission = admission
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def embed(self, text: str) -> Embedding:
        permit = await self._admission.admit(self.name, embed_tokens(text))
        try:
            embedding = await self._inner.embed(text)
        except EnrichmentFailure as failure:
            await self._admission.failed(permit, failure)
            raise
        await self._admission.succeeded(permit, embedding.total_tokens or None)
        return embedding

    async def aclose(self) -> None:
        await self._inner.aclose()
