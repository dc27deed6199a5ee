"""The soak engine: three `pgqueue-enricher run` processes, thousands of pointers, faults everywhere.

The fake Gemini/Voyage server (its own process) answers 10 % 429 with a retry delay, 5 % 500,
2 % timeouts and 1 % SAFETY finishes. Every few seconds a random worker is SIGKILLed and
restarted, and at random times every worker's database connection is terminated with
`pg_terminate_backend`. Meanwhile two provider phases run (tests/support/soak_phases.py): a Gemini
quota well below the fleet's pace that the workers are not told about, and a Gemini outage
that must pause the fleet until a probe finds Gemini back. When every row is final (or the
time runs out) the workers are stopped with SIGTERM and the run is judged from the database
and the fake's counters:

- every row final: none left `pending` or `processing` (rows lost: 0);
- no pointer's result written more than once (an AFTER UPDATE trigger installed in the soak
  database records each write of a complete result in `soak_writes`);
- no pointer spent more attempts than PASS2_MAX_ATTEMPTS (a quota wait gives its attempt back,
  so Gemini calls may exceed attempts); one successful call per completed pointer,
  except where an attempt was lost (rescued after its lease expired: a SIGKILL between the
  answer and the checkpoint legitimately costs a second call) — counted and printed;
- every failed row has a reason, and the reason is a SAFETY block or spent attempts; none
  names the quota or the outage (a quota refusal is a wait, a paused provider gives the
  attempt back);
- each phase took effect: the quota refused calls and the fleet learnt it; the outage paused
  the fleet, and a probe lifted the pause once the fake was back;
- every worker exits 0 on the final SIGTERM.

`run_soak(config, database_url)` is one run as a coroutine: tests/e2e/test_soak.py runs a short
one in the suite, and bench/soak.py (`make soak`) is the long run from the command line. It
lives under tests/ because the suite needs it and tests never import bench/.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from pgqueue_enricher.demo import rows
from tests.fakes.server import tiny_png
from tests.support.soak_phases import (
    PROVIDER_CHANNEL,
    PROVIDER_SQL,
    Changes,
    OutagePhase,
    Phases,
    PhaseSettings,
    ProviderEvents,
    QuotaPhase,
    names_a_phase,
    phase_checks,
)

ROOT = Path(__file__).resolve().parents[2]  # the fake server runs as `python -m tests.fakes.server`

APP_PREFIX = "pgqueue-enricher:"  # the workers' application_name prefix (README, CLI)
SOAK_APP = "pgqe-soak"
CROP = "crops/soak.png"
FINAL_CHANNEL = "soak_final"  # notified by soak_track() below
UP_CHANNEL = "soak_worker_up"  # notified by soak_track_worker() below: a worker registered
RESCUE_TEXT = "%stopped renewing its lease%"  # pointers_rescue_expired's enrichment_error

BOOKKEEPING_SQL = """
CREATE TABLE IF NOT EXISTS soak_writes (
    pointer_id uuid NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS soak_transitions (
    pointer_id uuid NOT NULL,
    old_status text,
    new_status text,
    attempts int,
    holder text,
    error text,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION soak_track() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    -- A result write: the transition to complete, or any later change of the result.
    IF NEW.enrichment_status = 'complete' AND (
        OLD.enrichment_status IS DISTINCT FROM 'complete'
        OR NEW.description IS DISTINCT FROM OLD.description
        OR NEW.embedding IS DISTINCT FROM OLD.embedding
    ) THEN
        INSERT INTO soak_writes (pointer_id) VALUES (NEW.id);
    END IF;
    IF NEW.enrichment_status IS DISTINCT FROM OLD.enrichment_status THEN
        INSERT INTO soak_transitions (pointer_id, old_status, new_status, attempts, holder, error)
        VALUES (NEW.id, OLD.enrichment_status, NEW.enrichment_status, NEW.enrichment_attempts,
                OLD.enrichment_locked_by, NEW.enrichment_error);
        IF NEW.enrichment_status IN ('complete', 'failed') THEN
            PERFORM pg_notify('soak_final', NEW.id::text);
        END IF;
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS soak_track ON pointers;
CREATE TRIGGER soak_track AFTER UPDATE ON pointers FOR EACH ROW EXECUTE FUNCTION soak_track();
-- A worker's first heartbeat inserts its registry row: it is up (a kill now loses real work).
CREATE OR REPLACE FUNCTION soak_track_worker() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    PERFORM pg_notify('soak_worker_up', NEW.worker_id);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS soak_track_worker ON pgqueue_enricher_workers;
CREATE TRIGGER soak_track_worker AFTER INSERT ON pgqueue_enricher_workers
    FOR EACH ROW EXECUTE FUNCTION soak_track_worker();
"""

POINTER_FACTS_SQL = """
SELECT p.title, p.enrichment_status AS status, p.enrichment_attempts AS attempts,
       p.enrichment_error AS error,
       (coalesce(p.description, '') <> '' AND p.embedding IS NOT NULL) AS has_result,
       coalesce(w.n, 0) AS writes,
       coalesce(r.n, 0) AS rescues,
       coalesce(r.holders, ARRAY[]::text[]) AS rescued_from
FROM pointers AS p
LEFT JOIN (SELECT pointer_id, count(*) AS n FROM soak_writes GROUP BY 1) AS w ON w.pointer_id = p.id
LEFT JOIN (
    SELECT pointer_id, count(*) AS n, array_agg(holder) AS holders
    FROM soak_transitions
    WHERE old_status = 'processing' AND new_status IN ('pending', 'failed')
      AND error LIKE $1
    GROUP BY 1
) AS r ON r.pointer_id = p.id
"""


@dataclass
class SoakConfig:
    pointers: int = 5000
    workers: int = 3
    concurrency: int = 8
    max_seconds: float = 300.0
    kill_every: float = 3.0  # mean seconds between SIGKILLs (jittered ±30 %)
    terminate_every: float = 8.0  # mean seconds between pg_terminate_backend rounds
    max_kills: int | None = None
    kill_after_up: bool = True  # the next kill's wait starts once the last replacement is up
    max_terminations: int | None = None
    chaos_until: float = 0.95  # stop killing once this fraction of rows is final ...
    chaos_seconds: float | None = None  # ... or after this long (default: 60 % of max_seconds)
    seed: int = 1
    batch: int = 500
    rate_429: float = 0.10
    rate_500: float = 0.05
    rate_timeout: float = 0.02
    rate_safety: float = 0.01
    retry_delay: str = "2s"
    gemini_latency: float = 0.2
    timeout_sleep: float = 5.0
    lease_seconds: float = 3.0
    max_attempts: int = 8
    backoff_base: float = 0.2
    backoff_max: float = 2.0
    gemini_timeout: float = 2.0
    poll_interval: float = 1.0
    shutdown_grace: float = 5.0
    # The provider phases (tests/support/soak_phases.py); the workers get no PASS2_GEMINI_RPM.
    quota_calls: int = 4  # Gemini calls the fake accepts per quota_window in the quota phase
    quota_window: float = 1.0
    quota_at: float = 0.10  # the quota phase begins once this share of rows is final ...
    quota_seconds: float = 20.0  # ... and lasts this long (at least until the fleet learnt it)
    outage_mode: str = "down"  # the fake's outage: 503 UNAVAILABLE on every Gemini call
    outage_at: float = 0.40  # the outage begins once this share of rows is final ...
    outage_seconds: float = 8.0  # ... and lasts this long after the fleet paused
    probe_base: float = 1.0  # PASS2_PROBE_BASE / PASS2_PROBE_MAX of the workers
    probe_max: float = 4.0
    phase_timeout: float = 60.0  # the longest wait for a phase's effect (a pause, its lifting)
    log_dir: Path | None = None  # worker and fake logs (default: a temp dir, kept on failure)
    progress: bool = True


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class SoakReport:
    config: SoakConfig
    statuses: dict[str, int]
    lost: int
    processing: int
    multi_written: int
    attempts_over_max: int  # pointers with more attempts than PASS2_MAX_ATTEMPTS
    complete_without_ok_call: int
    second_ok_calls: int  # completed pointers whose Gemini answer was paid for more than once
    second_ok_explained: int  # ... of which an attempt was lost (rescued after its lease expired)
    second_ok_after_kill: int  # ... of which a lost attempt was held by a SIGKILLed worker
    extra_ok_calls: int
    failed_without_reason: int
    failed_unexplained: int
    failed_safety: int
    failed_exhausted: int
    failed_by_phase: int  # failed rows whose reason names the quota or the outage
    kills: int
    terminations: int
    backends_terminated: int
    rescues: int
    rescues_from_killed: int
    exit_codes: list[int | None]
    gemini: dict[str, Any]
    voyage_calls: int
    load_seconds: float
    drain_seconds: float | None
    throughput: float
    timed_out: bool
    log_dir: Path
    quota: QuotaPhase
    outage: OutagePhase
    suspects: list[str] = field(default_factory=list)  # titles of pointers that broke a check
    rescued_from_live: dict[str, int] = field(default_factory=dict)  # leases lost by live workers
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.ok for check in self.checks)

    def figures(self) -> list[tuple[str, str]]:
        outcomes = dict(self.gemini.get("outcomes", {}))
        ok_calls = outcomes.pop("ok", 0)
        faults = ", ".join(f"{kind} {n}" for kind, n in sorted(outcomes.items())) or "none"
        complete = self.statuses.get("complete", 0)
        calls = self.gemini.get("calls", 0)
        drain = "n/a" if self.drain_seconds is None else f"{self.drain_seconds:.1f} s"
        return [
            (
                "load",
                f"{self.config.pointers} pointers, {self.config.workers} workers x "
                f"{self.config.concurrency} slots",
            ),
            ("statuses", ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))),
            ("gemini calls", f"{calls} ({ok_calls} ok; {calls / max(complete, 1):.2f} per completed)"),
            ("faults injected", faults),
            ("voyage calls", str(self.voyage_calls)),
            ("kills (SIGKILL)", str(self.kills)),
            ("terminations", f"{self.terminations} rounds, {self.backends_terminated} backends"),
            (
                "leases rescued",
                f"{self.rescues} ({self.rescues_from_killed} from killed workers"
                + "".join(f"; {n} from live {w}" for w, n in sorted(self.rescued_from_live.items()))
                + ")",
            ),
            (
                "2nd ok gemini call",
                f"{self.second_ok_calls} of {complete} completed "
                f"({100 * self.second_ok_calls / max(complete, 1):.1f} %, {self.extra_ok_calls} extra calls; "
                f"{self.second_ok_explained} after a lost attempt, {self.second_ok_after_kill} of a killed worker)",
            ),
            ("quota phase", self.quota.line()),
            ("outage phase", self.outage.line()),
            (
                "failed",
                f"{self.failed_safety} safety, {self.failed_exhausted} attempts spent, "
                f"{self.failed_by_phase} naming the quota or the outage",
            ),
            ("rows processing", str(self.processing)),
            ("rows lost", str(self.lost)),
            ("multi-written", str(self.multi_written)),
            ("drain after last fault", drain),
            ("run time", f"{self.load_seconds:.1f} s"),
            ("throughput", f"{self.throughput:.1f} pointers/s"),
            ("worker exit codes", " ".join(str(c) for c in self.exit_codes)),
        ]

    def render(self) -> str:
        width = max(len(name) for name, _ in self.figures())
        lines = ["", "soak figures", "-" * 60]
        lines += [f"{name:<{width}}  {value}" for name, value in self.figures()]
        lines += ["-" * 60, "checks"]
        lines += [f"  [{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        if self.suspects:
            lines.append("  suspect pointers: " + "; ".join(self.suspects))
        logs = f" (logs: {self.log_dir})" if self.log_dir.exists() else ""
        lines.append(f"result: {'PASS' if self.passed else 'FAIL'}{logs}")
        return "\n".join(lines)


def evaluate(report: SoakReport) -> list[Check]:
    """The invariants every soak run must hold."""
    r = report
    complete = r.statuses.get("complete", 0)
    return [
        Check(
            "all rows final",
            r.lost == 0 and r.processing == 0 and not r.timed_out,
            f"{r.lost} not final, {r.processing} processing" + (" (timed out)" if r.timed_out else ""),
        ),
        Check("result written once", r.multi_written == 0, f"{r.multi_written} pointers written twice"),
        Check(
            "attempts <= PASS2_MAX_ATTEMPTS",
            r.attempts_over_max == 0,
            f"{r.attempts_over_max} pointers with more than {r.config.max_attempts} attempts",
        ),
        Check(
            "one successful gemini call per completed pointer",
            r.complete_without_ok_call == 0 and r.second_ok_explained == r.second_ok_calls,
            f"{complete - r.second_ok_calls - r.complete_without_ok_call} exactly one, "
            f"{r.second_ok_calls} more than one (all after a lost attempt: "
            f"{r.second_ok_explained == r.second_ok_calls}), {r.complete_without_ok_call} none",
        ),
        Check(
            "failed rows have a reason",
            r.failed_without_reason == 0,
            f"{r.failed_without_reason} without enrichment_error",
        ),
        Check(
            "failed rows are safety blocks or spent attempts",
            r.failed_unexplained == 0,
            f"{r.failed_unexplained} failed for another reason",
        ),
        *(Check(name, ok, detail) for name, ok, detail in phase_checks(r.quota, r.outage, r.failed_by_phase)),
        Check(
            "workers exit 0 on SIGTERM",
            all(code == 0 for code in r.exit_codes),
            " ".join(str(c) for c in r.exit_codes),
        ),
        Check(
            "faults happened",
            r.kills > 0 and r.terminations > 0 and r.backends_terminated > 0,
            f"{r.kills} kills, {r.terminations} terminations",
        ),
    ]


# -- processes ---------------------------------------------------------------------------


def _append(path: Path) -> Any:
    return path.open("ab")


class Processes:
    """Every child process of the soak, so that all of them are stopped whatever happens."""

    def __init__(self) -> None:
        self.children: list[asyncio.subprocess.Process] = []

    async def spawn(self, args: list[str], env: dict[str, str], log: Path, **kw: Any) -> Any:
        with _append(log) as stream:
            process = await asyncio.create_subprocess_exec(
                *args, env=env, stdin=asyncio.subprocess.DEVNULL, stderr=stream, **kw
            )
        self.children.append(process)
        return process

    async def stop_all(self, grace: float) -> None:
        alive = [p for p in self.children if p.returncode is None]
        for process in alive:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if alive:
            await asyncio.wait([asyncio.ensure_future(p.wait()) for p in alive], timeout=grace)
        for process in alive:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


class Fleet:
    """N worker slots; a killed worker is restarted at once under a new worker id."""

    def __init__(self, processes: Processes, env: dict[str, str], log_dir: Path, count: int) -> None:
        self.processes = processes
        self.env = env
        self.log_dir = log_dir
        self.slots: list[tuple[str, asyncio.subprocess.Process] | None] = [None] * count
        self.generation = collections.Counter[int]()
        self.killed_ids: set[str] = set()
        self.up: set[str] = set()  # worker ids that registered (see UP_CHANNEL)
        self.changes = Changes()

    def on_up(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.up.add(payload)
        self.changes.changed()

    def is_up(self, slot: int) -> bool:
        entry = self.slots[slot]
        return entry is not None and entry[0] in self.up

    async def start(self, slot: int) -> None:
        worker_id = f"soak-w{slot}-{self.generation[slot]}"
        self.generation[slot] += 1
        process = await self.processes.spawn(
            [sys.executable, "-m", "pgqueue_enricher", "run", "--worker-id", worker_id],
            self.env,
            self.log_dir / f"{worker_id}.log",
            stdout=asyncio.subprocess.DEVNULL,
            cwd=self.log_dir,  # no stray .env file is read
        )
        self.slots[slot] = (worker_id, process)

    async def kill_and_restart(self, slot: int) -> str:
        current = self.slots[slot]
        assert current is not None
        worker_id, process = current
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        await process.wait()
        self.killed_ids.add(worker_id)
        await self.start(slot)
        return worker_id

    async def stop(self, grace: float) -> list[int | None]:
        """SIGTERM every live worker; their exit codes (None: had to be SIGKILLed)."""
        running = [entry[1] for entry in self.slots if entry is not None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for process in running:
            try:
                codes.append(await asyncio.wait_for(process.wait(), grace + 10))
            except TimeoutError:
                process.kill()
                await process.wait()
                codes.append(None)
        return codes


async def start_fake(processes: Processes, config: SoakConfig, log_dir: Path) -> tuple[Any, str]:
    args = [
        sys.executable,
        "-m",
        "tests.fakes.server",
        "--port",
        "0",
        "--seed",
        str(config.seed),
        "--rate-429-retry-info",
        str(config.rate_429),
        "--retry-delay",
        config.retry_delay,
        "--rate-500",
        str(config.rate_500),
        "--rate-timeout",
        str(config.rate_timeout),
        "--rate-safety",
        str(config.rate_safety),
        "--timeout-sleep",
        str(config.timeout_sleep),
        "--latency",
        str(config.gemini_latency),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await processes.spawn(args, env, log_dir / "fake-server.log", stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    base_url = line.decode().strip()
    if not base_url.startswith("http://"):
        raise RuntimeError(f"the fake server did not start (see {log_dir / 'fake-server.log'})")
    return process, base_url


def fake_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url + "/_fake/stats", timeout=30) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def worker_env(config: SoakConfig, database_url: str, base_url: str, storage_dir: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    return {
        **keep,
        "DATABASE_URL": database_url,
        "ENRICHER_PROVIDER": "gemini",
        "GEMINI_API_KEY": "soak-gemini-key",
        "GEMINI_BASE_URL": base_url,
        "VOYAGE_API_KEY": "soak-voyage-key",
        "VOYAGE_BASE_URL": base_url + "/v1",
        "STORAGE_DIR": str(storage_dir),
        "PASS2_MAX_CONCURRENT": str(config.concurrency),
        "PASS2_POLL_INTERVAL": str(config.poll_interval),
        "PASS2_MAX_ATTEMPTS": str(config.max_attempts),
        "PASS2_LEASE_SECONDS": str(config.lease_seconds),
        "PASS2_BACKOFF_BASE": str(config.backoff_base),
        "PASS2_BACKOFF_MAX": str(config.backoff_max),
        "PASS2_GEMINI_TIMEOUT": str(config.gemini_timeout),
        "PASS2_VOYAGE_TIMEOUT": str(config.gemini_timeout),
        "PASS2_SHUTDOWN_GRACE": str(config.shutdown_grace),
        "PASS2_PROBE_BASE": str(config.probe_base),
        "PASS2_PROBE_MAX": str(config.probe_max),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }


def phase_settings(config: SoakConfig) -> PhaseSettings:
    return PhaseSettings(
        quota_calls=config.quota_calls,
        quota_window=config.quota_window,
        quota_at=config.quota_at,
        quota_seconds=config.quota_seconds,
        outage_mode=config.outage_mode,
        outage_at=config.outage_at,
        outage_seconds=config.outage_seconds,
        phase_timeout=config.phase_timeout,
        pointers=config.pointers,
    )


# -- the run -----------------------------------------------------------------------------


class Progress:
    """Rows that reached a final status, learnt from the bookkeeping trigger's NOTIFY."""

    def __init__(self) -> None:
        self.final: set[str] = set()
        self.changed = asyncio.Event()
        self.changes = Changes()  # for the phases, which wait for their share of final rows

    def on_final(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.final.add(payload)
        self.changed.set()
        self.changes.changed()


async def insert_pointers(conn: asyncpg.Connection, config: SoakConfig) -> None:
    project = await rows.insert_project(conn, "Soak", user_id="soak")
    discipline = await rows.insert_discipline(conn, project, "Architectural")
    start = 1
    while start <= config.pointers:
        end = min(start + config.batch - 1, config.pointers)
        page = await rows.insert_page(
            conn,
            discipline,
            f"A-{500 + start // config.batch} Wall Sections",
            sheet_reflection="Wall sections for the east elevation.",
        )
        # One statement per batch, as Pass 1 inserts; titles are unique per pointer.
        batch = [
            rows.NewPointer(page, f"Soak {config.seed} detail {g:06d}", CROP) for g in range(start, end + 1)
        ]
        await rows.insert_pointers(conn, batch)
        start = end + 1


class Chaos:
    """SIGKILLs and connection terminations on a random schedule, until told to stop."""

    def __init__(self, config: SoakConfig, fleet: Fleet, admin: asyncpg.Pool, log: Any) -> None:
        self.config = config
        self.fleet = fleet
        self.admin = admin
        self.log = log
        self.rng = random.Random(config.seed)
        self.stop = asyncio.Event()
        self.kills = 0
        self.terminations = 0
        self.backends = 0
        self.last_fault_at: float | None = None  # wall clock

    def halt(self) -> None:
        self.stop.set()
        self.fleet.changes.changed()  # a killer waiting for a replacement to come up

    async def _pause(self, mean: float) -> bool:
        """Wait about `mean` seconds (the load pattern); False once chaos is over."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), mean * self.rng.uniform(0.7, 1.3))
        return not self.stop.is_set()

    async def killer(self) -> None:
        limit = self.config.max_kills
        while (limit is None or self.kills < limit) and await self._pause(self.config.kill_every):
            # A random worker among those holding rows, so that every kill loses work in flight
            # (none hold rows while Gemini is paused: then any worker that is up).
            holders = {
                row["holder"]
                for row in await self.admin.fetch(
                    "SELECT DISTINCT enrichment_locked_by AS holder FROM pointers "
                    "WHERE enrichment_status = 'processing'"
                )
            }
            busy = [n for n, entry in enumerate(self.fleet.slots) if entry and entry[0] in holders]
            up = [n for n in range(len(self.fleet.slots)) if self.fleet.is_up(n)]
            slot = self.rng.choice(busy or up or list(range(len(self.fleet.slots))))
            worker_id = await self.fleet.kill_and_restart(slot)
            self.kills += 1
            self.last_fault_at = time.time()
            self.log(f"SIGKILL {worker_id} (kill {self.kills})")
            if not self.config.kill_after_up:
                continue
            # The next kill's wait starts once the replacement is up: on a loaded machine a
            # worker takes seconds to start, and kills faster than that only stall the fleet.
            replacement = self.fleet.slots[slot]
            assert replacement is not None
            new_id = replacement[0]
            await self.fleet.changes.until(
                lambda: new_id in self.fleet.up or self.stop.is_set(),  # noqa: B023 - awaited here
                self.config.phase_timeout,
            )

    async def terminator(self) -> None:
        limit = self.config.max_terminations
        while (limit is None or self.terminations < limit) and await self._pause(self.config.terminate_every):
            count = await self.admin.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name LIKE $1 AND datname = current_database()",
                APP_PREFIX + "%",
            )
            self.terminations += 1
            self.backends += int(count)
            self.last_fault_at = time.time()
            self.log(f"pg_terminate_backend: {count} worker connections (round {self.terminations})")


async def run_soak(config: SoakConfig, database_url: str) -> SoakReport:
    """One soak run against a migrated database; the judged report (see `report.passed`)."""
    log_dir = config.log_dir or Path(tempfile.mkdtemp(prefix="pgqe-soak-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    storage = log_dir / "storage"
    (storage / CROP).parent.mkdir(parents=True, exist_ok=True)
    (storage / CROP).write_bytes(tiny_png(64, 48))
    t0 = time.monotonic()

    def say(message: str) -> None:
        if config.progress:
            print(f"[{time.monotonic() - t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    processes = Processes()
    # The killer, the terminator and the progress loop query concurrently: a small pool.
    admin = await asyncpg.create_pool(
        database_url, min_size=1, max_size=3, server_settings={"application_name": SOAK_APP}
    )
    watcher = await asyncpg.connect(database_url, server_settings={"application_name": SOAK_APP})
    tasks: list[asyncio.Task[None]] = []
    try:
        await admin.execute(BOOKKEEPING_SQL)
        await admin.execute(PROVIDER_SQL)
        progress = Progress()
        events = ProviderEvents()
        await watcher.add_listener(FINAL_CHANNEL, progress.on_final)
        await watcher.add_listener(PROVIDER_CHANNEL, events.on_event)
        _fake, base_url = await start_fake(processes, config, log_dir)
        say(f"fake providers at {base_url}; logs in {log_dir}")
        fleet = Fleet(processes, worker_env(config, database_url, base_url, storage), log_dir, config.workers)
        await watcher.add_listener(UP_CHANNEL, fleet.on_up)
        for slot in range(config.workers):
            await fleet.start(slot)

        load_started = time.time()
        async with admin.acquire() as conn:
            await insert_pointers(conn, config)
        say(f"inserted {config.pointers} pointers in statements of {config.batch}")

        chaos = Chaos(config, fleet, admin, say)
        chaos_deadline = t0 + (config.chaos_seconds or 0.6 * config.max_seconds)
        deadline = t0 + config.max_seconds
        phases = Phases(
            phase_settings(config),
            base_url,
            admin,
            lambda: len(progress.final),
            progress.changes,
            events,
            chaos,
            say,
        )
        next_note = time.monotonic() + 10
        timed_out = False
        while True:
            if len(progress.final) >= config.pointers:
                # Notifications say so; the table has the last word.
                unfinished = await admin.fetchval(
                    "SELECT count(*) FROM pointers WHERE enrichment_status IN ('pending', 'processing')"
                )
                if unfinished == 0:
                    break
            if not tasks and progress.final:
                # The workers are up and finishing rows: the faults and the phases begin.
                tasks = [
                    asyncio.create_task(chaos.killer()),
                    asyncio.create_task(chaos.terminator()),
                    asyncio.create_task(phases.run(deadline)),
                ]
            now = time.monotonic()
            if (
                not chaos.stop.is_set()
                and phases.done.is_set()  # the phases run while the other faults go on
                and (len(progress.final) >= config.chaos_until * config.pointers or now >= chaos_deadline)
            ):
                chaos.halt()
                say(f"faults stop: {len(progress.final)} of {config.pointers} rows final")
            if now >= next_note:
                next_note = now + 10
                say(f"{len(progress.final)} of {config.pointers} final; {chaos.kills} kills")
            if now >= deadline:
                timed_out = True
                say("time is up")
                break
            progress.changed.clear()
            # Woken by the trigger's NOTIFY; the timeout only paces the progress line.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.changed.wait(), min(2.0, max(deadline - now, 0.01)))
        chaos.halt()
        if tasks and not phases.done.is_set():
            tasks[-1].cancel()  # the run is over: a phase still waiting did not take effect
        await asyncio.gather(*tasks, return_exceptions=True)
        say(f"drained: {len(progress.final)} final; stopping workers")
        exit_codes = await fleet.stop(config.shutdown_grace)
        stats = await asyncio.to_thread(fake_stats, base_url)
        await processes.stop_all(5)

        await phases.judge()
        report = await analyse(
            admin, config, stats, chaos, fleet, exit_codes, load_started, timed_out, phases
        )
        report.log_dir = log_dir
        report.checks = evaluate(report)
        if report.passed and config.log_dir is None:
            shutil.rmtree(log_dir, ignore_errors=True)
        return report
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await processes.stop_all(config.shutdown_grace)
        for closable in (watcher, admin):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(closable.close(), 5)


async def analyse(
    conn: asyncpg.Pool,
    config: SoakConfig,
    stats: dict[str, Any],
    chaos: Chaos,
    fleet: Fleet,
    exit_codes: list[int | None],
    load_started: float,
    timed_out: bool,
    phases: Phases,
) -> SoakReport:
    gemini = stats["gemini"]
    ok_by_title: dict[str, int] = gemini.get("ok_by_title", {})
    facts = await conn.fetch(POINTER_FACTS_SQL, RESCUE_TEXT)
    statuses = collections.Counter(row["status"] for row in facts)

    attempts_over_max = complete_without_ok = second_ok = second_explained = extra_ok = 0
    second_after_kill = 0
    failed_without_reason = failed_unexplained = failed_safety = failed_exhausted = failed_by_phase = 0
    rescues = rescues_from_killed = 0
    suspects: list[str] = []
    live_holders: collections.Counter[str] = collections.Counter()
    for row in facts:
        ok = ok_by_title.get(row["title"], 0)
        rescues += row["rescues"]
        for holder in row["rescued_from"]:
            if holder in fleet.killed_ids:
                rescues_from_killed += 1
            else:
                live_holders[holder or "?"] += 1
        if row["attempts"] > config.max_attempts:
            attempts_over_max += 1
        if row["status"] == "complete":
            if ok == 0 or not row["has_result"]:
                complete_without_ok += 1
            elif ok > 1:
                second_ok += 1
                extra_ok += ok - 1
                # Each lost attempt (a rescued lease) may have paid for an answer nobody stored.
                if any(holder in fleet.killed_ids for holder in row["rescued_from"]):
                    second_after_kill += 1
                if ok - 1 <= row["rescues"]:
                    second_explained += 1
                else:
                    suspects.append(row["title"])
        elif row["status"] == "failed":
            error = (row["error"] or "").strip()
            if not error:
                failed_without_reason += 1
            elif names_a_phase(error):
                failed_by_phase += 1
                suspects.append(f"{row['title']}: {error}")
            elif "for safety" in error:
                failed_safety += 1
            elif "gave up after" in error:
                failed_exhausted += 1
            else:
                failed_unexplained += 1

    multi_written = await conn.fetchval(
        "SELECT count(*) FROM (SELECT pointer_id FROM soak_writes GROUP BY 1 HAVING count(*) > 1) AS m"
    )
    last_final = await conn.fetchval(
        "SELECT extract(epoch FROM max(at))::float8 FROM soak_transitions "
        "WHERE new_status IN ('complete', 'failed')"
    )
    finished = last_final or time.time()
    drain = None
    if chaos.last_fault_at is not None and last_final is not None:
        drain = max(0.0, last_final - chaos.last_fault_at)
    final = statuses.get("complete", 0) + statuses.get("failed", 0)
    run_seconds = max(finished - load_started, 1e-6)
    return SoakReport(
        config=config,
        statuses=dict(statuses),
        lost=config.pointers - final,
        processing=statuses.get("processing", 0),
        multi_written=int(multi_written),
        attempts_over_max=attempts_over_max,
        complete_without_ok_call=complete_without_ok,
        second_ok_calls=second_ok,
        second_ok_explained=second_explained,
        second_ok_after_kill=second_after_kill,
        extra_ok_calls=extra_ok,
        failed_without_reason=failed_without_reason,
        failed_unexplained=failed_unexplained,
        failed_safety=failed_safety,
        failed_exhausted=failed_exhausted,
        failed_by_phase=failed_by_phase,
        kills=chaos.kills,
        terminations=chaos.terminations,
        backends_terminated=chaos.backends,
        rescues=rescues,
        rescues_from_killed=rescues_from_killed,
        exit_codes=exit_codes,
        gemini={k: v for k, v in gemini.items() if k not in ("by_title", "ok_by_title")},
        voyage_calls=int(stats["voyage"]["calls"]),
        load_seconds=run_seconds,
        drain_seconds=drain,
        throughput=final / run_seconds,
        timed_out=timed_out,
        log_dir=Path("."),
        quota=phases.quota,
        outage=phases.outage,
        suspects=suspects[:10],
        rescued_from_live=dict(live_holders),
    )
