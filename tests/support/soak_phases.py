"""The soak's provider phases: a Gemini quota the fleet is not told about, and a Gemini outage.

Both run during the soak's chaos (random faults, SIGKILLs, pg_terminate_backend go on):

- the quota phase: once `quota_at` of the rows are final, the fake (its own process, driven
  over its HTTP control routes) accepts at most `quota_calls` Gemini calls per sliding
  `quota_window` seconds and refuses the rest as Gemini does (429 RESOURCE_EXHAUSTED with
  QuotaFailure and RetryInfo). The workers have no PASS2_GEMINI_RPM: the adaptive rate has to
  learn the quota from the refusals. The phase lasts `quota_seconds`, and at least until the
  fleet has learnt the quota (`quota_rpm` set in pgqueue_enricher_provider_state);
- the outage phase: once `outage_at` of the rows are final, every Gemini call is answered
  503 UNAVAILABLE (the fake's outage mode "down"). The phase waits for the fleet-wide pause,
  keeps Gemini down for `outage_seconds` more (so that probes fail), brings it back and waits
  for the pause to be lifted.

What happened is read from the fake's counters and from a trigger on the provider state that
records every pause, probe and resume (`soak_provider_events`); a phase that did not take
effect fails the run (see `phase_checks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

PROVIDER_CHANNEL = "soak_provider"  # notified by soak_track_provider() below

PROVIDER_SQL = """
CREATE TABLE IF NOT EXISTS soak_provider_events (
    provider text NOT NULL,
    event text NOT NULL,
    kind text,
    worker text,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION soak_track_provider() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
    happened text;
    who text;
BEGIN
    IF OLD.paused_since IS NULL AND NEW.paused_since IS NOT NULL THEN
        happened := 'paused';
    ELSIF OLD.paused_since IS NOT NULL AND NEW.paused_since IS NULL THEN
        happened := 'resumed';
        who := OLD.probe_by;
    ELSIF NEW.paused_since IS NOT NULL AND NEW.probe_by IS NOT NULL
          AND NEW.next_probe_at IS DISTINCT FROM OLD.next_probe_at THEN
        happened := 'probe';  -- provider_state_probe_take: one worker took the fleet's probe
        who := NEW.probe_by;
    ELSIF NEW.quota_rpm IS DISTINCT FROM OLD.quota_rpm THEN
        happened := 'quota';
    ELSE
        RETURN NULL;
    END IF;
    INSERT INTO soak_provider_events (provider, event, kind, worker)
    VALUES (NEW.provider, happened, coalesce(NEW.paused_kind, OLD.paused_kind), who);
    PERFORM pg_notify('soak_provider', NEW.provider || ' ' || happened);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS soak_track_provider ON pgqueue_enricher_provider_state;
CREATE TRIGGER soak_track_provider AFTER UPDATE ON pgqueue_enricher_provider_state
    FOR EACH ROW EXECUTE FUNCTION soak_track_provider();
-- Once the quota phase is over, the quota counts as raised: refusals that were already on their
-- way when the fake lifted it still name the old quota, and would make it the fleet's ceiling
-- again (see QUOTA_RESTORE_SQL). Those are forgotten, and counted.
CREATE TABLE IF NOT EXISTS soak_quota_raised (at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE OR REPLACE FUNCTION soak_forget_quota() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    IF NEW.provider = 'gemini' AND NEW.quota_rpm IS NOT NULL AND EXISTS (SELECT 1 FROM soak_quota_raised) THEN
        NEW.quota_rpm := NULL;
        NEW.admitted_rpm := OLD.admitted_rpm;
        INSERT INTO soak_provider_events (provider, event) VALUES (NEW.provider, 'late_quota');
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS soak_forget_quota ON pgqueue_enricher_provider_state;
CREATE TRIGGER soak_forget_quota BEFORE UPDATE ON pgqueue_enricher_provider_state
    FOR EACH ROW EXECUTE FUNCTION soak_forget_quota();
"""

PROVIDER_EVENTS_SQL = """
SELECT event, kind, worker, extract(epoch FROM at)::float8 AS at
FROM soak_provider_events WHERE provider = 'gemini' ORDER BY at
"""

# The quota phase ends as if a project's quota had been raised. A fleet cannot learn a raise by
# itself: its adaptive rate never grows past a quota a refusal named (sql/definitions/admission.sql,
# provider_state_acquire). So the soak puts the row back as it was before the phase (no learnt
# quota, the admitted rate of then), through the table an operator would use, and forgets late
# refusals (soak_forget_quota); the rest of the run goes on as it would have without the phase.
QUOTA_RESTORE_SQL = """
WITH raised AS (INSERT INTO soak_quota_raised DEFAULT VALUES)
UPDATE pgqueue_enricher_provider_state SET quota_rpm = NULL, admitted_rpm = $1 WHERE provider = 'gemini'
"""

GEMINI_STATE_SQL = """
SELECT admitted_rpm, quota_rpm, paused_kind, rejected_total
FROM pgqueue_enricher_provider_state WHERE provider = 'gemini'
"""

# What a failed row's enrichment_error says when the quota or the outage made it fail: neither
# may, since a quota refusal is a wait and a paused provider gives the attempt back.
PHASE_ERROR = re.compile(r"quota|RESOURCE_EXHAUSTED|\b429\b|\b503\b|UNAVAILABLE|paused", re.IGNORECASE)


def names_a_phase(error: str) -> bool:
    return PHASE_ERROR.search(error) is not None


# -- awaiting what other processes do -------------------------------------------------------


class Changes:
    """Wake every waiter whenever something it watches changed (a NOTIFY arrived)."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """True once `predicate()` holds, False if `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, left)
        return True


class ProviderEvents:
    """Gemini's pauses, probes, resumes and learnt quota, as the trigger NOTIFYs them."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []  # (event, monotonic time it arrived)
        self.changes = Changes()

    def on_event(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        provider, _, event = payload.partition(" ")
        if provider == "gemini":
            self.seen.append((event, time.monotonic()))
            self.changes.changed()

    def count(self, event: str) -> int:
        return sum(1 for name, _ in self.seen if name == event)

    async def until_more(self, event: str, than: int, timeout: float) -> bool:
        return await self.changes.until(lambda: self.count(event) > than, timeout)


# -- the fake's control routes ----------------------------------------------------------------


def fake_call(base_url: str, path: str, payload: Any = None, *, post: bool = True) -> Any:
    data = json.dumps(payload).encode() if post else None
    request = urllib.request.Request(base_url + path, data=data, method="POST" if post else "GET")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


async def gemini_stats(base_url: str) -> dict[str, Any]:
    stats = await asyncio.to_thread(fake_call, base_url, "/_fake/stats", post=False)
    return stats["gemini"]


# -- what each phase did ----------------------------------------------------------------------


@dataclass
class QuotaPhase:
    calls: int
    window: float
    ran: bool = False
    seconds: float = 0.0
    refused: int = 0  # calls the fake's quota refused (429 + QuotaFailure naming it)
    accepted: int = 0  # calls it let through
    learnt: bool = False  # the fleet recorded the quota it was refused by
    named_rpm: float | None = None  # pgqueue_enricher_provider_state.quota_rpm at the end
    admitted_rpm: float | None = None  # ... and the adaptive admitted rate
    kills: int = 0
    terminations: int = 0
    rows_final: int = 0  # rows that became final during the phase
    late: int = 0  # refusals recorded after the quota was lifted (forgotten, see QUOTA_RESTORE_SQL)

    @property
    def quota_rpm(self) -> float:
        return self.calls * 60 / self.window

    def line(self, judged: bool = True) -> str:
        """The phase in words; `judged=False` while the run goes on (late refusals not yet counted)."""
        if not self.ran:
            return "did not run"
        goodput = self.accepted / max(self.seconds, 1e-6) / (self.calls / self.window)
        admitted = "unlimited" if self.admitted_rpm is None else f"{self.admitted_rpm:.0f}/min"
        named = "none" if self.named_rpm is None else f"{self.named_rpm:g}/min"
        return (
            f"{self.calls} calls/{self.window:g} s for {self.seconds:.1f} s: {self.refused} calls refused, "
            f"{self.accepted} accepted ({goodput:.2f} of the quota); learnt quota {named}, "
            f"admitted rate {admitted} (restored after"
            + (f"; {self.late} late refusals forgotten); " if judged else "); ")
            + f"{self.rows_final} rows final, "
            f"{self.kills} kills, {self.terminations} terminations meanwhile"
        )


@dataclass
class OutagePhase:
    mode: str
    ran: bool = False
    seconds: float = 0.0  # how long the fake refused every call
    refused: int = 0  # calls answered with the outage's fault
    paused_after: float | None = None  # seconds from the outage's start to the fleet's pause
    pauses: int = 0
    probes_down: int = 0  # probes taken while Gemini was still down
    probes_up: int = 0  # probes taken after it came back, up to the resume
    resumed_after: float | None = None  # seconds from the recovery to the lifted pause
    resumed_by_probe: bool = False
    still_paused: bool = False  # at the end of the run
    stray: list[str] = field(default_factory=list)  # pause events outside the phase
    kills: int = 0
    terminations: int = 0

    @property
    def probes(self) -> int:
        return self.probes_down + self.probes_up

    def line(self, judged: bool = True) -> str:
        """The phase in words; `judged=False` while the run goes on (pauses and probes are
        counted from the trigger's record at the end)."""
        if not self.ran:
            return "did not run"
        paused = "never" if self.paused_after is None else f"{self.paused_after:.1f} s after it began"
        resumed = (
            "not lifted"
            if self.resumed_after is None
            else f"lifted {self.resumed_after:.1f} s after recovery"
        )
        if not judged:
            return (
                f"Gemini {self.mode} for {self.seconds:.1f} s: {self.refused} calls refused; fleet paused "
                f"{paused}; {resumed}; {self.kills} kills, {self.terminations} terminations meanwhile"
            )
        return (
            f"Gemini {self.mode} for {self.seconds:.1f} s: {self.refused} calls refused; fleet paused "
            f"{paused} ({self.pauses} pause{'s' if self.pauses != 1 else ''}); "
            f"{self.probes_down} probes taken while down, {self.probes_up} after; {resumed}"
            f"{' by a probe' if self.resumed_by_probe else ''}; "
            f"{self.kills} kills, {self.terminations} terminations meanwhile"
            + (f"; also {', '.join(self.stray)} outside the phase" if self.stray else "")
        )


@dataclass
class PhaseSettings:
    """The phases' part of SoakConfig (see tests/support/soak_engine.py)."""

    quota_calls: int
    quota_window: float
    quota_at: float
    quota_seconds: float
    outage_mode: str
    outage_at: float
    outage_seconds: float
    phase_timeout: float
    pointers: int


class Phases:
    """Runs the quota phase and then the outage phase, each when its share of rows is final."""

    def __init__(
        self,
        settings: PhaseSettings,
        base_url: str,
        admin: asyncpg.Pool,
        final_count: Callable[[], int],
        progress: Changes,
        events: ProviderEvents,
        chaos: Any,
        say: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.base_url = base_url
        self.admin = admin
        self.final_count = final_count
        self.progress = progress
        self.events = events
        self.chaos = chaos
        self.say = say
        self.quota = QuotaPhase(settings.quota_calls, settings.quota_window)
        self.outage = OutagePhase(settings.outage_mode)
        self.done = asyncio.Event()
        # Wall-clock windows of the outage, to match the trigger's timestamps against.
        self._down_at: float | None = None
        self._up_at: float | None = None

    async def run(self, deadline: float) -> None:
        try:
            await self._quota_phase(deadline)
            await self._outage_phase(deadline)
        finally:
            self.done.set()

    async def _reached(self, share: float, deadline: float) -> bool:
        target = math.ceil(share * self.settings.pointers)
        return await self.progress.until(
            lambda: self.final_count() >= target, max(deadline - time.monotonic(), 0.0)
        )

    def _chaos_mark(self) -> tuple[int, int]:
        return self.chaos.kills, self.chaos.terminations

    async def _quota_phase(self, deadline: float) -> None:
        s, phase = self.settings, self.quota
        if not await self._reached(s.quota_at, deadline):
            return
        before = await gemini_stats(self.base_url)
        kills, terms, final = *self._chaos_mark(), self.final_count()
        was = await self.admin.fetchrow(GEMINI_STATE_SQL)
        started = time.monotonic()
        await asyncio.to_thread(
            fake_call,
            self.base_url,
            "/_fake/gemini/quota",
            {"calls": s.quota_calls, "window": s.quota_window},
        )
        phase.ran = True
        self.say(f"quota phase: Gemini accepts {s.quota_calls} calls per {s.quota_window:g} s")
        learnt = self.events.count("quota")
        # The phase lasts its time, and at least until the fleet has learnt the quota.
        phase.learnt = await self.events.until_more("quota", learnt, s.phase_timeout)
        left = started + s.quota_seconds - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)  # the phase's length: the load pattern, not a synchronisation
        state = await self.admin.fetchrow(GEMINI_STATE_SQL)
        await asyncio.to_thread(fake_call, self.base_url, "/_fake/gemini/quota", None)
        await self.admin.execute(QUOTA_RESTORE_SQL, was["admitted_rpm"])
        phase.seconds = time.monotonic() - started
        after = await gemini_stats(self.base_url)
        phase.refused = after["outcomes"].get("quota", 0) - before["outcomes"].get("quota", 0)
        phase.accepted = after["quota"]["accepted"] - before["quota"]["accepted"]
        phase.named_rpm, phase.admitted_rpm = state["quota_rpm"], state["admitted_rpm"]
        phase.kills, phase.terminations = self.chaos.kills - kills, self.chaos.terminations - terms
        phase.rows_final = self.final_count() - final
        self.say(f"quota phase over: {phase.line(judged=False)}")

    async def _outage_phase(self, deadline: float) -> None:
        s, phase = self.settings, self.outage
        if not await self._reached(s.outage_at, deadline):
            return
        before = await gemini_stats(self.base_url)
        kills, terms = self._chaos_mark()
        pauses = self.events.count("paused")
        started = time.monotonic()
        self._down_at = time.time()
        await asyncio.to_thread(fake_call, self.base_url, "/_fake/gemini/outage", s.outage_mode)
        phase.ran = True
        self.say(f"outage phase: Gemini answers every call with its {s.outage_mode!r} fault")
        if await self.events.until_more("paused", pauses, s.phase_timeout):
            phase.paused_after = time.monotonic() - started
            self.say(f"outage phase: the fleet paused Gemini after {phase.paused_after:.1f} s")
            # Down a while longer, so that the fleet's probes meet the outage.
            await asyncio.sleep(s.outage_seconds)  # the outage's length, not a synchronisation
        recovered = time.monotonic()
        self._up_at = time.time()
        await asyncio.to_thread(fake_call, self.base_url, "/_fake/gemini/outage", None)
        phase.seconds = recovered - started
        after = await gemini_stats(self.base_url)
        fault = {"down": "503", "timeout": "timeout", "key_revoked": "401_key", "model_gone": "404"}[
            s.outage_mode
        ]
        phase.refused = after["outcomes"].get(fault, 0) - before["outcomes"].get(fault, 0)
        # Lifted once a resume follows the recovery and no pause is left open.
        resumed = self.events.count("resumed")
        if phase.paused_after is not None and await self.events.changes.until(
            lambda: (
                self.events.count("resumed") > resumed
                and self.events.count("resumed") >= self.events.count("paused")
            ),
            s.phase_timeout,
        ):
            phase.resumed_after = time.monotonic() - recovered
        phase.kills, phase.terminations = self.chaos.kills - kills, self.chaos.terminations - terms
        self.say(f"outage phase over: {phase.line(judged=False)}")

    async def judge(self) -> None:
        """Fill in the outage phase from the trigger's record: probes, and who lifted the pause."""
        phase = self.outage
        rows = await self.admin.fetch(PROVIDER_EVENTS_SQL)
        self.quota.late = sum(1 for row in rows if row["event"] == "late_quota")
        state = await self.admin.fetchrow(GEMINI_STATE_SQL)
        phase.still_paused = state is not None and state["paused_kind"] is not None
        down, up = self._down_at, self._up_at
        if down is None or up is None:
            phase.stray = [f"{r['event']} ({r['kind']})" for r in rows if r["event"] in ("paused", "resumed")]
            return
        # The phase: from the fake going down to the first resume after it came back.
        lifted = next((r["at"] for r in rows if r["event"] == "resumed" and r["at"] >= up), None)
        end = lifted if lifted is not None else math.inf
        for row in rows:
            at, event = row["at"], row["event"]
            if not down <= at <= end:
                if event in ("paused", "resumed"):
                    phase.stray.append(f"{event} ({row['kind']})")
            elif event == "paused":
                phase.pauses += 1
            elif event == "probe":
                if at < up:
                    phase.probes_down += 1
                else:
                    phase.probes_up += 1
        # Lifted by a probe: only a call begun during the pause may lift it (provider_state_succeed),
        # and while paused only the prober claims; the resume names the worker that probed last.
        prober = next((r["worker"] for r in rows if r["event"] == "resumed" and r["at"] == lifted), None)
        phase.resumed_by_probe = lifted is not None and prober is not None and phase.probes > 0


def phase_checks(quota: QuotaPhase, outage: OutagePhase, failed_by_phase: int) -> list[tuple[str, bool, str]]:
    """(name, ok, detail) for each phase: a phase that silently did nothing fails the run."""
    return [
        (
            "quota phase refused calls and the fleet learnt the quota",
            quota.ran and quota.refused > 0 and quota.learnt and quota.named_rpm == quota.quota_rpm,
            quota.line(),
        ),
        (
            "outage phase paused the fleet once and a probe lifted the pause after recovery",
            outage.ran
            and outage.paused_after is not None
            and outage.pauses == 1  # no call from before the pause lifted it while Gemini was down
            and outage.resumed_after is not None
            and outage.resumed_by_probe
            and not outage.still_paused,
            outage.line(),
        ),
        (
            "no failed row names the quota or the outage",
            failed_by_phase == 0,
            f"{failed_by_phase} failed rows name them",
        ),
    ]
