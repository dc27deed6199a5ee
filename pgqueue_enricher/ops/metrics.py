"""Counters of one worker, `/metrics` in Prometheus text format and `/healthz`.

A tiny asyncio HTTP server instead of a web framework: the daemon must stay lean, and two
GET endpoints need nothing more. `/healthz` serves pgqueue_enricher.ops.health's verdict: 200, or
503 with one line per reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pgqueue_enricher.ops import health

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.counts[index] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += seconds
        self.n += 1


@dataclass
class WorkerMetrics:
    claims: int = 0
    completions: int = 0
    lost: int = 0
    rescued: int = 0
    db_errors: int = 0
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    tier_tokens: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, tier)
    tier_cost_usd: Counter[str] = field(default_factory=Counter)
    stages: dict[str, Histogram] = field(default_factory=dict)
    pool: Any = None
    listener: Any = None
    admission: Any = None  # provider admission: its metrics and pauses

    def record_completion(self, seconds: float, timings_ms: dict[str, int], usage: dict[str, Any]) -> None:
        self.completions += 1
        self.stage("total").observe(seconds)
        for name, ms in timings_ms.items():
            self.stage(name.removesuffix("_ms")).observe(ms / 1000)
        for kind, count in usage.items():
            if isinstance(count, int):
                self.tokens[kind] += count

    def record_tier_usage(self, metadata: dict[str, Any]) -> None:
        """Gemini tokens by kind and service tier, and the estimated cost (providers/pricing.py)."""
        tier = metadata.get("service_tier")
        if not isinstance(tier, str):
            return
        for kind, count in (metadata.get("usage") or {}).items():
            if isinstance(count, int):
                self.tier_tokens[(kind, tier)] += count
        cost = metadata.get("estimated_cost_usd")
        if isinstance(cost, int | float):
            self.tier_cost_usd[tier] += float(cost)

    def record_failure(self, kind: str, *, transient: bool) -> None:
        self.failures[("transient" if transient else "permanent", kind)] += 1

    def stage(self, name: str) -> Histogram:
        return self.stages.setdefault(name, Histogram())

    def render(self, in_flight: int) -> str:
        lines = [
            "# TYPE pgqe_claims_total counter",
            f"pgqe_claims_total {self.claims}",
            "# TYPE pgqe_completions_total counter",
            f"pgqe_completions_total {self.completions}",
            "# TYPE pgqe_failures_total counter",
            *(
                f'pgqe_failures_total{{class="{cls}",kind="{kind}"}} {n}'
                for (cls, kind), n in sorted(self.failures.items())
            ),
            "# TYPE pgqe_leases_lost_total counter",
            f"pgqe_leases_lost_total {self.lost}",
            "# TYPE pgqe_rescued_total counter",
            f"pgqe_rescued_total {self.rescued}",
            "# TYPE pgqe_database_errors_total counter",
            f"pgqe_database_errors_total {self.db_errors}",
            "# TYPE pgqe_in_flight gauge",
            f"pgqe_in_flight {in_flight}",
            "# TYPE pgqe_listener_healthy gauge",
            f"pgqe_listener_healthy {int(bool(self.listener and self.listener.healthy))}",
            "# TYPE pgqe_listener_degraded gauge",
            f"pgqe_listener_degraded {int(bool(self.listener and self.listener.state == 'degraded'))}",
            "# TYPE pgqe_tokens_total counter",
            *(f'pgqe_tokens_total{{kind="{kind}"}} {n}' for kind, n in sorted(self.tokens.items())),
            "# TYPE pgqe_gemini_tokens_total counter",
            *(
                f'pgqe_gemini_tokens_total{{kind="{kind}",tier="{tier}"}} {n}'
                for (kind, tier), n in sorted(self.tier_tokens.items())
            ),
            "# TYPE pgqe_estimated_cost_usd_total counter",
            *(
                f'pgqe_estimated_cost_usd_total{{tier="{tier}"}} {usd:.6f}'
                for tier, usd in sorted(self.tier_cost_usd.items())
            ),
            "# TYPE pgqe_stage_seconds histogram",
        ]
        for name, hist in sorted(self.stages.items()):
            cumulative = 0
            for bound, count in zip((*LATENCY_BUCKETS, "+Inf"), hist.counts, strict=True):
                cumulative += count
                lines.append(f'pgqe_stage_seconds_bucket{{stage="{name}",le="{bound}"}} {cumulative}')
            lines.append(f'pgqe_stage_seconds_sum{{stage="{name}"}} {hist.total:.6f}')
            lines.append(f'pgqe_stage_seconds_count{{stage="{name}"}} {hist.n}')
        if self.admission is not None:
            lines += self.admission.render_metrics()
        return "\n".join(lines) + "\n"


async def serve_metrics(worker: Any, port: int, host: str = "0.0.0.0") -> asyncio.Server:  # noqa: S104
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            path = request.split()[1].decode() if len(request.split()) > 1 else "/"
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            if path == "/metrics":
                status, body = "200 OK", worker.metrics.render(len(worker.in_flight))
            elif path == "/healthz":
                verdict = await health.check(worker)
                status = "200 OK" if verdict.healthy else "503 Service Unavailable"
                body = verdict.body()
            else:
                status, body = "404 Not Found", "not found\n"
            payload = body.encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    return await asyncio.start_server(handle, host, port)
