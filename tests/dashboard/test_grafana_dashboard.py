"""deploy/grafana-dashboard.json asks only for metrics a worker's /metrics really serves.

A real worker (over the fake providers) enriches one pointer; its metrics text is what
Prometheus would scrape. Every metric name in the dashboard's queries must be in it, and
every label a query groups by must be on that metric's samples.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import asyncpg

from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, running_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
GROUPING = re.compile(r"by \((?P<labels>[^)]*)\) \((?:rate\()?(?P<metric>pgqe_\w+)")


def queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    found = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    found += [v["query"] for v in board["templating"]["list"] if v.get("type") == "query"]
    return found


def served_metrics(text: str) -> dict[str, set[str]]:
    """Metric name -> label names seen on its samples (histograms under each suffixed name)."""
    names: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            for suffix in HISTOGRAM_SUFFIXES if kind == "histogram" else ("",):
                names.setdefault(name + suffix, set())
        elif line and not line.startswith("#"):
            name, _, labels = line.split(" ")[0].partition("{")
            names.setdefault(name, set()).update(re.findall(r"(\w+)=", labels))
    return names


async def test_every_metric_the_grafana_dashboard_queries_is_served(
    db_url: str, conn: asyncpg.Connection, provider_settings: Settings, crops: FakeServer, watcher: RowWatcher
) -> None:
    _, page = await make_page(conn)
    await insert_pointers(conn, page, 1)
    async with running_worker(worker_settings(provider_settings, db_url)) as worker:
        assert set((await watcher.until_final(1, timeout=30)).values()) == {"complete"}
        served = served_metrics(worker.metrics.render(len(worker.in_flight)))
    asked = queries()
    assert len(asked) > 10
    for expr in asked:
        for name in re.findall(r"\bpgqe_\w+", expr):
            assert name in served, f"{name} (in {expr!r}) is not in the metrics output"
        for match in GROUPING.finditer(expr):
            labels = {label.strip() for label in match["labels"].split(",")} - {"le"}
            seen = served[match["metric"]]
            if seen:  # a counter with no samples yet has no labels to compare
                assert labels <= seen | {"le"}, (
                    f"{expr!r} groups by {labels - seen} that {match['metric']} lacks"
                )
