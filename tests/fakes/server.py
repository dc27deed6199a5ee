"""A fake Gemini + Voyage + Supabase Storage server on 127.0.0.1, for tests and soak runs.

One port serves the three service fakes (tests/fakes/gemini.py, voyage.py, storage.py; their
shared plumbing is tests/fakes/base.py).

It speaks just enough of each wire protocol for the real SDKs (google-genai, voyageai,
httpx) to work against it unmodified, records every request, and misbehaves on demand:

    fake = FakeServer().start()
    fake.gemini.script(["429", Fault("429_retry_info", retry_delay="1.5s"), "ok"])
    fake.gemini.rates(rate_429=0.1, rate_500=0.05, rate_timeout=0.02, retry_delay="2s", seed=7)
    fake.storage.put("crops/a.png", png_bytes)
    gate = fake.gemini.hold()          # calls now wait in flight ...
    await gate.arrivals(2)             # ... until two are waiting
    gate.release()

Every service also has "408" (a proxy's plain-text answer), "drop" (hang up before any
response) and "drop_mid_body" (a 200 whose body stops half way). Scripted faults are
one-shot and consumed in order before any probabilistic roll. Run as a
process for multi-process soak tests (the base URL is the first line on stdout):

    python -m tests.fakes.server --port 0 --rate-429 0.1 --retry-delay 2s --latency 0.05

Quota and outage modes (provider admission): `fake.gemini.quota(8, 1.0)` accepts 8 calls
per sliding second and refuses the rest with Gemini's QuotaFailure + RetryInfo (`quota(None)`
lifts it); `daily_quota(reset_in)`; `outage("key_revoked" | "model_gone" | "down" | "timeout" | None)`.

A process is driven over HTTP: `GET /_fake/stats`, `POST /_fake/reset`,
`POST /_fake/gemini/{quota|daily_quota|outage}`, `POST /_fake/objects/{bucket}/{path}` (raw
body), `POST /_fake/{gemini|voyage|storage}/script` (JSON list of kinds or fault objects),
`POST /_fake/{service}/rates` (JSON object of `rate_*` keys).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.fakes.base import Exchange, FakeHTTPServer, Fault, RecordedRequest, Route, ServiceFake
from tests.fakes.gemini import GeminiFake, realistic_answer
from tests.fakes.storage import DEFAULT_BUCKET, StorageFake, png_header, tiny_png
from tests.fakes.voyage import VoyageFake, fake_vector

# What tests and benches import from here, wherever it is defined.
__all__ = ["FakeServer", "Fault", "ServiceFake", "fake_vector", "png_header", "realistic_answer", "tiny_png"]


class FakeServer:
    """The three fakes on one loopback port. `start()` runs it in a daemon thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        timeout_sleep: float = 30.0,
        gemini_key: str | None = None,
        voyage_key: str | None = None,
        storage_key: str | None = None,
    ) -> None:
        self.host = host
        self.timeout_sleep = timeout_sleep  # how long a "timeout" fault holds its request
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._connections: set[socket.socket] = set()
        self._record_lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        # A key, when set, is the only one the service accepts; it refuses others its own way.
        self.gemini = GeminiFake(self, gemini_key)
        self.voyage = VoyageFake(self, voyage_key)
        self.storage = StorageFake(self, storage_key)
        self.routes: list[Route] = [
            ("GET", r"/_fake/stats", lambda ex, _m, _b: ex.json(200, self.stats())),
            ("POST", r"/_fake/reset", self._reset_route),
            ("POST", r"/_fake/(gemini|voyage|storage)/(script|rates)", self._script_route),
        ]
        for service in self.services:
            self.routes += service.routes()
        self._httpd = FakeHTTPServer((host, port), Exchange)
        self._httpd.fake = self
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def services(self) -> tuple[ServiceFake, ...]:
        return (self.gemini, self.voyage, self.storage)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        for service in self.services:
            service.release()
        self._httpd.shutdown()
        for conn in list(self._connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget scripts, rates, objects and records; wake requests held by a timeout fault."""
        self.reset_wake()
        for service in self.services:
            service.reset()
        with self._record_lock:
            self.requests = []

    def reset_wake(self) -> None:
        """End every sleep in progress (latency, slow titles, timeout faults), keeping all state."""
        old, self._wake = self._wake, threading.Event()
        old.set()

    def stats(self) -> dict[str, Any]:
        with self._record_lock:
            total = len(self.requests)
        return {
            "requests": total,
            "gemini": self.gemini.stats(),
            "voyage": self.voyage.stats(),
            "storage": self.storage.stats(),
        }

    def _record(self, record: RecordedRequest) -> None:
        with self._record_lock:
            self.requests.append(record)

    def _sleep(self, seconds: float) -> None:
        """Sleep that ends early when the server stops or is reset."""
        self._wake.wait(seconds)

    def _reset_route(self, ex: Exchange, match: re.Match[str], body: bytes) -> None:
        self.reset()
        ex.json(200, {"reset": True})

    def _script_route(self, ex: Exchange, match: re.Match[str], body: bytes) -> None:
        service = getattr(self, match[1])
        try:
            payload = json.loads(body or b"null")
            if match[2] == "script":
                service.script(payload)
            else:
                service.rates(**payload)
        except (TypeError, ValueError) as exc:
            ex.json(400, {"error": str(exc)})
            return
        ex.json(200, {"ok": True})


# -- command line ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=None, help="seed for every fault roll")
    for kind in ("429", "429-retry-info", "500", "503", "timeout", "drop", "safety", "empty"):
        parser.add_argument(f"--rate-{kind}", type=float, default=0.0, help=f"Gemini {kind} probability")
    for service in ("voyage", "storage"):
        for kind in ("429", "500", "503", "timeout", "drop"):
            parser.add_argument(f"--{service}-rate-{kind}", type=float, default=0.0)
    parser.add_argument(
        "--retry-delay", default=None, help='RetryInfo delay on rolled Gemini 429s, e.g. "2s"'
    )
    parser.add_argument(
        "--retry-after", default=None, help="Retry-After header on rolled 429s, 500s and 503s (seconds)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each Gemini call")
    parser.add_argument("--quota-calls", type=int, default=None, help="Gemini quota: calls per window")
    parser.add_argument("--quota-window", type=float, default=1.0, help="Gemini quota window (seconds)")
    parser.add_argument("--quota-vertex", action="store_true", help="quota 429s carry no details")
    parser.add_argument("--voyage-latency", type=float, default=0.0)
    parser.add_argument("--storage-latency", type=float, default=0.0)
    parser.add_argument("--timeout-sleep", type=float, default=30.0, help="how long a timeout fault hangs")
    parser.add_argument("--gemini-key", default=None, help="refuse other Gemini keys (default: accept any)")
    parser.add_argument("--voyage-key", default=None)
    parser.add_argument("--storage-key", default=None)
    parser.add_argument("--objects-dir", type=Path, default=None, help="serve these files as bucket objects")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET)
    return parser


def _rates(args: argparse.Namespace, prefix: str, kinds: Iterable[str]) -> dict[str, float]:
    return {
        f"rate_{kind.replace('-', '_')}": getattr(args, f"{prefix}rate_{kind.replace('-', '_')}")
        for kind in kinds
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    fake = FakeServer(
        args.host,
        args.port,
        timeout_sleep=args.timeout_sleep,
        gemini_key=args.gemini_key,
        voyage_key=args.voyage_key,
        storage_key=args.storage_key,
    )
    fake.gemini.rates(
        seed=args.seed,
        retry_delay=args.retry_delay,
        retry_after=args.retry_after,
        **_rates(args, "", ("429", "429-retry-info", "500", "503", "timeout", "drop", "safety", "empty")),
    )
    for index, service in enumerate((fake.voyage, fake.storage), start=1):
        seed = None if args.seed is None else args.seed + index
        rates = _rates(args, f"{service.name}_", ("429", "500", "503", "timeout", "drop"))
        service.rates(seed=seed, retry_after=args.retry_after, **rates)
    fake.gemini.latency = args.latency
    if args.quota_calls is not None:
        fake.gemini.quota(args.quota_calls, args.quota_window, vertex=args.quota_vertex)
    fake.voyage.latency = args.voyage_latency
    fake.storage.latency = args.storage_latency
    if args.objects_dir is not None:
        root = args.objects_dir.resolve()
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            fake.storage.put(file.relative_to(root).as_posix(), file.read_bytes(), bucket=args.bucket)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    fake.start()
    print(fake.base_url, flush=True)
    done.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
