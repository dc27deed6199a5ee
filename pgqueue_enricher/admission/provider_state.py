"""The providers' shared rows (`pgqueue_enricher_provider_state`): what a worker reads of them,
the statements it runs on them (sql/admission.sql), and how `status` prints them.

gate.py decides when to run each statement and what it means for a call; this module only
speaks to the table, so that `status` reads it without the gate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from pgqueue_enricher.schema.sqlfiles import blocks

Executor = asyncpg.Pool | asyncpg.Connection


def query(name: str) -> str:
    """A named statement from sql/admission.sql."""
    return blocks("admission.sql")[name]


# How to lift each provider's pause by hand, as printed by `status` and the pause log line.
RESUME_HINTS = {
    "gemini": "SELECT pgqueue_enricher_resume_provider('gemini');",
    "voyage": "SELECT pgqueue_enricher_resume_provider('voyage');",
}


@dataclass(frozen=True)
class ProviderState:
    """One provider's row as last read (`read_at` is this worker's monotonic clock)."""

    provider: str
    rpm_limit: float | None = None
    tpm_limit: float | None = None
    admitted_rpm: float | None = None
    quota_rpm: float | None = None
    epoch: int = 0
    consecutive_failures: int = 0
    paused_kind: str | None = None
    paused_reason: str | None = None
    paused_since: datetime | None = None
    next_probe_at: datetime | None = None
    next_probe_in_s: float | None = None
    probe_by: str | None = None
    admitted_total: int = 0
    rejected_total: int = 0
    rejected_per_minute: float = 0.0
    last_cut_s: float | None = None  # since the adaptive rate was last cut
    read_at: float = 0.0

    @property
    def paused(self) -> bool:
        return self.paused_since is not None

    @property
    def gated(self) -> bool:
        """Whether a call needs a permit: a limit is configured or has been learnt."""
        return self.rpm_limit is not None or self.tpm_limit is not None or self.admitted_rpm is not None

    @property
    def probe_due(self) -> bool:
        if not self.paused or self.next_probe_in_s is None:
            return False
        return time.monotonic() >= self.read_at + self.next_probe_in_s

    def report(self) -> dict[str, Any]:
        """The shape `status --json` shows under "providers"."""
        return {
            "provider": self.provider,
            "rpm_limit": self.rpm_limit,
            "tpm_limit": self.tpm_limit,
            "admitted_rpm": None if self.admitted_rpm is None else round(self.admitted_rpm, 1),
            "quota_rpm": self.quota_rpm,
            "rejected_per_minute": round(self.rejected_per_minute, 1),
            "rejected_total": self.rejected_total,
            "paused": None
            if not self.paused
            else {
                "kind": self.paused_kind,
                "reason": self.paused_reason,
                "since": self.paused_since.isoformat() if self.paused_since else None,
                "next_probe_at": self.next_probe_at.isoformat() if self.next_probe_at else None,
                "next_probe_in_s": None
                if self.next_probe_in_s is None
                else round(max(self.next_probe_in_s, 0.0), 1),
            },
        }


def _state(row: asyncpg.Record) -> ProviderState:
    return ProviderState(
        provider=row["provider"],
        rpm_limit=row["rpm_limit"],
        tpm_limit=row["tpm_limit"],
        admitted_rpm=row["admitted_rpm"],
        quota_rpm=row["quota_rpm"],
        epoch=int(row["throttle_epoch"]),
        consecutive_failures=int(row["consecutive_failures"]),
        paused_kind=row["paused_kind"],
        paused_reason=row["paused_reason"],
        paused_since=row["paused_since"],
        next_probe_at=row["next_probe_at"],
        next_probe_in_s=row["next_probe_in_s"],
        probe_by=row["probe_by"],
        admitted_total=int(row["admitted_total"]),
        rejected_total=int(row["rejected_total"]),
        rejected_per_minute=float(row["rejected_per_minute"] or 0.0),
        last_cut_s=row["last_cut_s"],
        read_at=time.monotonic(),
    )


async def read_states(db: Executor) -> dict[str, ProviderState]:
    return {row["provider"]: _state(row) for row in await db.fetch(query("provider_state_read"))}


def pause_line(state: ProviderState) -> str:
    since = state.paused_since.isoformat(timespec="seconds") if state.paused_since else "?"
    probe = "" if state.next_probe_in_s is None else f"; next probe in {max(state.next_probe_in_s, 0):.0f} s"
    return f"{state.provider} paused since {since} ({state.paused_kind}){probe}: {state.paused_reason}"


# -- statements (sql/admission.sql) ----------------------------------------------------------


async def configure(db: Executor, provider: str, rpm: float | None, tpm: float | None) -> None:
    await db.execute(query("provider_state_configure"), provider, rpm, tpm)


async def permit(
    db: Executor,
    provider: str,
    tokens: int | None,
    correction: int,
    max_hold: float,
    headroom: float,
    increase: float,
    worker_id: str,
    probe_max: float,
) -> asyncpg.Record | None:
    """One call's permit (None: the provider has no row). `tokens` None only charges `correction`."""
    return await db.fetchrow(
        query("provider_state_permit"),
        provider,
        tokens,
        correction,
        max_hold,
        headroom,
        increase,
        worker_id,
        probe_max,
    )


async def throttle(
    db: Executor,
    provider: str,
    epoch: int,
    quota_rpm: float | None,
    decrease: float,
    start: float,
    floor: float,
    mild: float,
    window: float,
) -> asyncpg.Record:
    return await db.fetchrow(
        query("provider_state_throttle"), provider, epoch, quota_rpm, decrease, start, floor, mild, window
    )


async def fail(
    db: Executor, provider: str, threshold: int, kind: str, reason: str, first_probe: float, base: float
) -> asyncpg.Record:
    return await db.fetchrow(
        query("provider_state_fail"), provider, threshold, kind, reason, first_probe, base
    )


async def forget_quota(db: Executor, provider: str, memory_s: float) -> float | None:
    return await db.fetchval(query("provider_state_forget_quota"), provider, memory_s)


async def succeed(db: Executor, provider: str, call_age_s: float) -> asyncpg.Record | None:
    return await db.fetchrow(query("provider_state_succeed"), provider, call_age_s)


# -- status ---------------------------------------------------------------------------------


async def provider_report(db: Executor) -> list[dict[str, Any]]:
    """Every provider's limits, admitted rate, 429 rate and pause, for `status`."""
    try:
        states = await read_states(db)
    except asyncpg.UndefinedTableError:
        return []
    return [state.report() for state in states.values()]


def status_lines(providers: list[dict[str, Any]]) -> list[str]:
    """`status` in words: one line per provider, and one more for a pause."""
    lines = []
    for item in providers:
        limits = ", ".join(
            f"{value:g} {unit}"
            for value, unit in ((item["rpm_limit"], "requests/min"), (item["tpm_limit"], "tokens/min"))
            if value is not None
        )
        admitted = item["admitted_rpm"]
        lines.append(
            f"{item['provider']}: limits {limits or 'none (adaptive)'}; admitted rate "
            f"{'unlimited' if admitted is None else f'{admitted:g} requests/min'}; "
            f"429s {item['rejected_per_minute']:g}/min"
        )
        pause = item["paused"]
        if pause:
            probe = pause["next_probe_in_s"]
            lines.append(
                f"  PAUSED since {pause['since']} ({pause['kind']})"
                + ("" if probe is None else f", next probe in {probe:.0f} s")
                + f": {pause['reason']}"
            )
            lines.append(
                "  lift by hand: " + RESUME_HINTS.get(item["provider"], "pgqueue_enricher_resume_provider")
            )
    return lines
