"""Quota: how much of a shared Gemini quota a fleet turns into work, and what it wastes.

The wire-level fake (its own process) enforces a per-minute-style quota the way the Gemini
API does: at most N accepted calls in any window of W seconds, the rest refused with 429
RESOURCE_EXHAUSTED, a QuotaFailure (quotaId ...PerMinute..., quotaValue scaled to a minute)
and a RetryInfo. Three `pgqueue-enricher run` processes x 8 slots drain 240 pointers with
the production backoff settings, once with PASS2_GEMINI_RPM set to the quota (configured)
and once with no limit (adaptive). Scenarios: 8 calls per 1 s, and 20 calls per 5 s.

Prints, per run: goodput ÷ quota (accepted calls per second between the first and the last
accepted call, over the quota's rate), rejected calls per accepted call, the most attempts
any row spent, failed rows, and the wall time from the first call to the last row done.
Targets: goodput >= 0.95 configured, >= 0.90 adaptive; rejected per accepted <= 0.05
configured, <= 0.10 adaptive; 0 rows failed; no row spends more than 1 attempt.

Then a backlog far beyond the quota: 2,000 pointers under 60 calls a minute (PASS2_GEMINI_RPM=60),
the same fleet for --backlog-seconds. A row that cannot get a permit soon must not be claimed
and given back over and over: prints how many times each completed row was claimed on average
(target <= 1.5) and all claims per completed row, while the rest wait.

    .venv/bin/python bench/quota.py [--pointers 240] [--workers 3] [--concurrency 8] [--latency 0.5]
        [--backlog-seconds 150] [--skip-scenarios] [--skip-backlog]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import migrated_database, seed_pointers  # noqa: E402
from tests.fakes.server import tiny_png  # noqa: E402

SCENARIOS = ((8, 1.0), (20, 5.0))
TARGETS = {"configured": (0.95, 0.05), "adaptive": (0.90, 0.10)}
BACKLOG, BACKLOG_QUOTA, BACKLOG_TARGET = 2000, 60, 1.5
# Every claim of a row, noted by a trigger (a claim moves a row from pending to processing).
COUNT_CLAIMS = """
CREATE TABLE IF NOT EXISTS bench_claims (pointer_id uuid NOT NULL);
TRUNCATE bench_claims;
CREATE OR REPLACE FUNCTION bench_note_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_claims VALUES (NEW.id);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS bench_note_claim ON pointers;
CREATE TRIGGER bench_note_claim AFTER UPDATE OF enrichment_status ON pointers FOR EACH ROW
    WHEN (OLD.enrichment_status = 'pending' AND NEW.enrichment_status = 'processing')
    EXECUTE FUNCTION bench_note_claim();
"""
CLAIMS_PER_COMPLETED_ROW = """
SELECT (SELECT count(*) FROM pointers WHERE enrichment_status = 'complete') AS completed,
       (SELECT count(*) FROM bench_claims AS c JOIN pointers AS p ON p.id = c.pointer_id
        WHERE p.enrichment_status = 'complete') AS claims_of_completed,
       (SELECT count(*) FROM bench_claims) AS claims,
       (SELECT count(*) FROM pointers WHERE enrichment_status = 'failed') AS failed
"""


@dataclass
class Result:
    scenario: str
    mode: str
    accepted: int
    rejected: int
    goodput: float
    max_attempts: int
    failed: int
    unfinished: int
    seconds: float

    @property
    def passed(self) -> bool:
        goodput, rejected = TARGETS[self.mode]
        return (
            self.goodput >= goodput
            and self.rejected / max(self.accepted, 1) <= rejected
            and self.failed == 0
            and self.unfinished == 0
            and self.max_attempts <= 1
        )


def fake_call(base_url: str, path: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(base_url + path, data=data, method="POST" if data else "GET")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


async def start_fake(log: Path, latency: float) -> tuple[asyncio.subprocess.Process, str]:
    with log.open("ab") as stream:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.fakes.server",
            "--port",
            "0",
            "--latency",
            str(latency),
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
            stderr=stream,
        )
    assert process.stdout is not None
    base_url = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
    if not base_url.startswith("http://"):
        raise RuntimeError(f"the fake server did not start (see {log})")
    return process, base_url


def worker_env(database_url: str, base_url: str, storage: Path, concurrency: int, rpm: float | None) -> dict:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env = {
        **keep,
        "DATABASE_URL": database_url,
        "ENRICHER_PROVIDER": "gemini",
        "GEMINI_API_KEY": "quota-bench-gemini-key",
        "GEMINI_BASE_URL": base_url,
        "VOYAGE_API_KEY": "quota-bench-voyage-key",
        "VOYAGE_BASE_URL": base_url + "/v1",
        "STORAGE_DIR": str(storage),
        "PASS2_MAX_CONCURRENT": str(concurrency),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }  # backoff, poll interval, attempts: the production defaults
    if rpm is not None:
        env["PASS2_GEMINI_RPM"] = f"{rpm:g}"
    return env


@contextlib.asynccontextmanager
async def fleet(
    args: argparse.Namespace, url: str, calls: int, window: float, rpm: float | None, name: str, logs: Path
) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """The fake with its quota and `args.workers` worker processes, on a fresh provider state."""
    conn = await asyncpg.connect(url)
    await conn.execute("TRUNCATE pgqueue_enricher_provider_state")
    await conn.execute("INSERT INTO pgqueue_enricher_provider_state (provider) VALUES ('gemini'), ('voyage')")
    storage = Path(tempfile.mkdtemp(prefix="pgqe-quota-crops-"))
    (storage / "crops").mkdir()
    (storage / "crops" / "x.png").write_bytes(tiny_png())
    fake, base_url = await start_fake(logs / f"fake-{name}.log", args.latency)
    workers: list[asyncio.subprocess.Process] = []
    try:
        fake_call(base_url, "/_fake/gemini/quota", {"calls": calls, "window": window})
        env = worker_env(url, base_url, storage, args.concurrency, rpm)
        for n in range(args.workers):
            with (logs / f"worker-{name}-{n}.log").open("ab") as stream:
                workers.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "pgqueue_enricher",
                        "run",
                        "--worker-id",
                        f"quota-{n}",
                        env=env,
                        cwd=storage,
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=stream,
                    )
                )
        yield conn, base_url
    finally:
        for process in workers:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in workers:
            try:
                await asyncio.wait_for(process.wait(), 40)
            except TimeoutError:
                process.kill()
        with contextlib.suppress(ProcessLookupError):
            fake.send_signal(signal.SIGTERM)
        await fake.wait()
        await conn.close()
        shutil.rmtree(storage, ignore_errors=True)


async def one_run(
    args: argparse.Namespace, url: str, calls: int, window: float, mode: str, logs: Path
) -> Result:
    await seed_pointers(url, args.pointers)
    rpm = calls * 60 / window if mode == "configured" else None
    async with fleet(args, url, calls, window, rpm, f"{calls}per{window:g}s-{mode}", logs) as (
        conn,
        base_url,
    ):
        deadline = time.monotonic() + args.max_seconds
        while time.monotonic() < deadline:
            left = await conn.fetchval(
                "SELECT count(*) FROM pointers WHERE enrichment_status IN ('pending', 'processing')"
            )
            if left == 0:
                break
            await asyncio.sleep(0.2)
        done_at = time.time()
        stats = fake_call(base_url, "/_fake/stats")["gemini"]
        row = await conn.fetchrow(
            "SELECT max(enrichment_attempts) AS attempts,"
            " count(*) FILTER (WHERE enrichment_status = 'failed') AS failed,"
            " count(*) FILTER (WHERE enrichment_status IN ('pending', 'processing')) AS unfinished "
            "FROM pointers"
        )
    quota = stats["quota"]
    accepted = int(quota["accepted"])
    span = (quota["last_at"] or 0) - (quota["first_at"] or 0)
    goodput = (accepted - 1) / span / (calls / window) if accepted > 1 and span > 0 else 0.0
    return Result(
        scenario=f"{calls} per {window:g} s",
        mode=mode,
        accepted=accepted,
        rejected=int(stats["outcomes"].get("quota", 0)),
        goodput=goodput,
        max_attempts=int(row["attempts"] or 0),
        failed=int(row["failed"]),
        unfinished=int(row["unfinished"]),
        seconds=done_at - (quota["first_at"] or done_at),
    )


async def backlog_run(args: argparse.Namespace, logs: Path) -> bool:
    """BACKLOG rows under BACKLOG_QUOTA calls a minute: claims per completed row while the rest wait."""
    with migrated_database("pgqe_bench_backlog") as url:
        await seed_pointers(url, BACKLOG)
        setup = await asyncpg.connect(url)
        await setup.execute(COUNT_CLAIMS)
        await setup.close()
        async with fleet(args, url, BACKLOG_QUOTA, 60.0, BACKLOG_QUOTA, "backlog", logs) as (conn, _):
            await asyncio.sleep(args.backlog_seconds)
            row = await conn.fetchrow(CLAIMS_PER_COMPLETED_ROW)
    completed = int(row["completed"])
    per_row = row["claims_of_completed"] / completed if completed else float("inf")
    passed = completed > 0 and per_row <= BACKLOG_TARGET and row["failed"] == 0
    print(
        f"\nbacklog: {BACKLOG} pointers, quota {BACKLOG_QUOTA}/min (PASS2_GEMINI_RPM={BACKLOG_QUOTA}), "
        f"{args.workers} workers x {args.concurrency} slots, {args.backlog_seconds:g} s\n"
        f"completed {completed}, claims per completed row {per_row:.2f} (target <= {BACKLOG_TARGET}), "
        f"all claims per completed row {row['claims'] / max(completed, 1):.2f}, failed {row['failed']}  "
        f"{'PASS' if passed else 'FAIL'}"
    )
    return passed


async def run_all(args: argparse.Namespace, logs: Path) -> list[Result]:
    results = []
    with migrated_database("pgqe_bench_quota") as url:
        for calls, window in SCENARIOS:
            for mode in ("configured", "adaptive"):
                result = await one_run(args, url, calls, window, mode, logs)
                print(
                    f"  {result.scenario:<12} {mode:<10} goodput {result.goodput:.2f}  "
                    f"rejected/accepted {result.rejected / max(result.accepted, 1):.3f}",
                    flush=True,
                )
                results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pointers", type=int, default=240)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds each accepted Gemini call takes")
    parser.add_argument("--max-seconds", type=float, default=240.0, help="per run")
    parser.add_argument("--backlog-seconds", type=float, default=150.0)
    parser.add_argument("--skip-scenarios", action="store_true")
    parser.add_argument("--skip-backlog", action="store_true")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="pgqe-quota-logs-"))
    backlog_passed = args.skip_backlog or asyncio.run(backlog_run(args, logs))
    if args.skip_scenarios:
        print(f"logs: {logs}")
        return 0 if backlog_passed else 1
    results = asyncio.run(run_all(args, logs))
    print(
        f"\n{args.pointers} pointers, {args.workers} worker processes x {args.concurrency} slots, "
        f"Gemini latency {args.latency:g} s, production backoff settings"
    )
    header = (
        f"{'quota':<12} {'mode':<10} {'goodput/quota':>13} {'rejected/accepted':>17} "
        f"{'max attempts':>12} {'failed':>6} {'seconds':>7}  result"
    )
    print(header)
    for r in results:
        print(
            f"{r.scenario:<12} {r.mode:<10} {r.goodput:>13.2f} {r.rejected / max(r.accepted, 1):>17.3f} "
            f"{r.max_attempts:>12} {r.failed:>6} {r.seconds:>7.1f}  {'PASS' if r.passed else 'FAIL'}"
            + (f" ({r.unfinished} unfinished)" if r.unfinished else "")
        )
    print(
        "targets: goodput >= 0.95 configured, >= 0.90 adaptive; rejected/accepted <= 0.05 configured, "
        "<= 0.10 adaptive; 0 failed; max 1 attempt"
    )
    print(f"logs: {logs}")
    return 0 if backlog_passed and all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
