"""The providers' shared rows (`pgqueue_enricher_provider_state`): what a worker reads of them,
the statements it runs on them (sql/provider_state.sql), and how `status` prints them. gate.py
decides when to run each statement; `status` reads the rows here without the gate.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from pgqueue_enricher.schema.sqlfiles import blocks

Executor = asyncpg.Pool | asyncpg.Connection


def query(name: str) -> str:
    return blocks("provider_state.sql")[name]


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
        probe_in = self.next_probe_in_s
        pause = {
            "kind": self.paused_kind,
            "reason": self.paused_reason,
            "since": self.paused_since.isoformat() if self.paused_since else None,
            "next_probe_at": self.next_probe_at.isoformat() if self.next_probe_at else None,
            "next_probe_in_s": None if probe_in is None else round(max(probe_in, 0.0), 1),
        }
        return {
            "provider": self.provider,
            "rpm_limit": self.rpm_limit,
            "tpm_limit": self.tpm_limit,
            "admitted_rpm": None if self.admitted_rpm is None else round(self.admitted_rpm, 1),
            "quota_rpm": self.quota_rpm,
            "rejected_per_minute": round(self.rejected_per_minute, 1),
            "rejected_total": self.rejected_total,
            "paused": pause if self.paused else None,
        }


async def read_states(db: Executor) -> dict[str, ProviderState]:
    rows = await db.fetch(query("provider_state_read"))
    return {row["provider"]: ProviderState(**dict(row), read_at=time.monotonic()) for row in rows}


def pause_line(state: ProviderState) -> str:
    since = state.paused_since.isoformat(timespec="seconds") if state.paused_since else "?"
    probe = "" if state.next_probe_in_s is None else f"; next probe in {max(state.next_probe_in_s, 0):.0f} s"
    return f"{state.provider} paused since {since} ({state.paused_kind}){probe}: {state.paused_reason}"


# -- statements (sql/provider_state.sql): each runs as `db(statement, *parameters)` --------------


def _statement(name: str) -> Callable[..., Awaitable[asyncpg.Record | None]]:
    async def run(db: Executor, *parameters: Any) -> asyncpg.Record | None:
        return await db.fetchrow(query(name), *parameters)

    run.__name__ = name.removeprefix("provider_state_")
    return run


configure = _statement("provider_state_configure")
permit = _statement("provider_state_permit")
throttle = _statement("provider_state_throttle")
fail = _statement("provider_state_fail")
forget_quota = _statement("provider_state_forget_quota")
succeed = _statement("provider_state_succeed")


# -- status ---------------------------------------------------------------------------------


async def provider_report(db: Executor) -> list[dict[str, Any]]:
    """Every provider's limits, admitted rate, 429 rate and pause, for `status`."""
    try:
        states = await read_states(db)
    except asyncpg.UndefinedTableError:
        return []
    return [state.report() for state in states.values()]


def status_lines(providers: list[dict[str, Any]]) -> list[str]:
    """`status` in words: one line per provider, and two more for a pause."""
    lines = []
    for item in providers:
        units = ((item["rpm_limit"], "requests/min"), (item["tpm_limit"], "tokens/min"))
        limits = ", ".join(f"{value:g} {unit}" for value, unit in units if value is not None)
        admitted = "unlimited" if item["admitted_rpm"] is None else f"{item['admitted_rpm']:g} requests/min"
        lines.append(
            f"{item['provider']}: limits {limits or 'none (adaptive)'}; admitted rate {admitted}; "
            f"429s {item['rejected_per_minute']:g}/min"
        )
        if pause := item["paused"]:
            probe = (
                ""
                if pause["next_probe_in_s"] is None
                else f", next probe in {pause['next_probe_in_s']:.0f} s"
            )
            lines.append(f"  PAUSED since {pause['since']} ({pause['kind']}){probe}: {pause['reason']}")
            lines.append(f"  lift by hand: {RESUME_HINTS[item['provider']]}")
    return lines
