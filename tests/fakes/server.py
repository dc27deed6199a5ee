"""A fake Gemini + Voyage + Supabase Storage server on 127.0.0.1, for tests and soak runs.

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
lifts it);
`daily_quota(reset_in)`; `outage("key_revoked" | "model_gone" | "down" | "timeout" | None)`.

and drive it over HTTP: `GET /_fake/stats`, `POST /_fake/gemini/{quota|daily_quota|outage}`, `POST /_fake/objects/{bucket}/{path}` (raw
body), `POST /_fake/reset`, `POST /_fake/{gemini|voyage|storage}/script` (JSON list of
kinds or fault objects), `POST /_fake/{service}/rates` (JSON object of `rate_*` keys).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import hashlib
import json
import math
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

EMBEDDING_DIMENSIONS = 1024
DEFAULT_BUCKET = "project-files"
TITLE_PREFIX = "Pointer title:"

GEMINI_KINDS = frozenset(
    {
        "ok", "429", "429_retry_info", "429_no_retry_after", "408", "500", "503", "400", "401",
        "403", "timeout", "drop", "drop_mid_body", "safety", "prompt_blocked", "empty", "huge",
        "answer", "max_tokens", "404", "quota", "quota_vertex", "daily_quota", "401_key",
    }
)  # fmt: skip
# Outage modes of the Gemini fake, and the fault each answers every call with.
OUTAGE_MODES = {"key_revoked": "401_key", "model_gone": "404", "down": "503", "timeout": "timeout"}
VOYAGE_KINDS = frozenset(
    {
        "ok", "429", "429_no_retry_after", "408", "500", "503", "400", "401", "403", "timeout",
        "drop", "drop_mid_body", "dims", "garbled",
    }
)  # fmt: skip
STORAGE_KINDS = frozenset(
    {
        "ok", "404", "400", "400_not_found", "401", "403", "429", "429_no_retry_after", "408",
        "500", "503", "timeout", "drop", "drop_mid_body", "no_length", "endless", "body",
    }
)  # fmt: skip


@dataclass
class Fault:
    """One scripted response. `kind` is one of the service's kinds (see *_KINDS)."""

    kind: str
    text: str | None = None  # gemini "answer"/"max_tokens": the answer text
    # Retry-After header value ("3", or an HTTP date). A "429" sends a default one when this is
    # unset ("429_no_retry_after" sends none); a "500"/"503" sends one only when it is set.
    retry_after: str | None = None
    retry_delay: str | None = None  # gemini RetryInfo.retryDelay ("30s", "1.5s")
    dims: int | None = None  # voyage "dims": vector length (default 512)
    body: bytes | None = None  # storage "body": served with status 200
    sleep: float | None = None  # "timeout": how long to hold the request (default: server's)
    quota_value: str | None = None  # gemini "quota"/"daily_quota": QuotaFailure.quotaValue


def as_fault(value: str | Fault | dict[str, Any]) -> Fault:
    if isinstance(value, Fault):
        return value
    if isinstance(value, dict):
        data = dict(value)
        if isinstance(data.get("body"), str):
            data["body"] = data["body"].encode("latin-1")
        return Fault(**data)
    return Fault(str(value))


@dataclass
class RecordedRequest:
    service: str
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    camel: Any = None  # the JSON with every key in camelCase, for uniform assertions
    title: str | None = None
    image: bytes | None = None
    image_mime: str | None = None
    texts: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)  # "text" / "image" in wire order
    service_tier: str | None = None  # gemini: the body's top-level serviceTier (None: not sent)
    at: float = field(default_factory=time.time)


def camel_keys(value: Any) -> Any:
    """snake_case keys -> camelCase (the SDK sends both spellings)."""
    if isinstance(value, dict):
        return {
            re.sub(r"_([a-z0-9])", lambda m: m[1].upper(), str(k)): camel_keys(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


def urlsafe_decode(data: str) -> bytes:
    """Both URL-safe and standard base64, with or without padding."""
    data = data.strip()
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


# -- test data builders ------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = binascii.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header(width: int, height: int) -> bytes:
    """A PNG that only declares its size (no pixel data): enough to test size limits."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def tiny_png(width: int = 8, height: int = 6, *, extra: bytes = b"") -> bytes:
    """A valid greyscale PNG. `extra` goes into a private ancillary chunk; the default
    contains bytes whose base64 has '-' and '_' in the URL-safe alphabet."""
    rows = b"".join(b"\x00" + bytes((x * 31 + y * 17) % 256 for x in range(width)) for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    private = extra or (b"\xfb\xff\xbf" * 8 + b"\xf8\x3e\xff")
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"teSt", private)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def realistic_answer(title: str) -> str:
    """A final answer shaped like Gemini's: every section, a table, dimensions, references
    (one listed twice with different case)."""
    return f"""## Description
{title}: a typical exterior wall section at the roof parapet, showing 6" metal stud framing \
with exterior sheathing, the parapet cap flashing and the interior gypsum board finish.

## Extracted Content
- PARAPET HEIGHT 4'-6" ABOVE FINISHED ROOF
- 6" METAL STUDS @ 16" O.C.
- 5/8" TYPE X GYPSUM BOARD, ONE LAYER EACH SIDE
- SEE S-101 FOR STEEL FRAMING
- SEE DETAIL 4/A3.01 FOR CAP FLASHING
- GYPSUM BOARD PER SPEC SECTION 09 21 16

## Table Contents
| Mark | Material | Thickness |
|------|----------|-----------|
| 1 | Gypsum board, Type X | 5/8" |
| 2 | Metal stud | 6" |
| 3 | Sheathing |  |

## Cross-References
- S-101
- Detail 4/A3.01
- 09 21 16
- s-101

## Notes
- The top of the vertical dimension string is cut off at the crop edge.
"""


def _usage() -> dict[str, int]:
    return {
        "promptTokenCount": 1830,
        "candidatesTokenCount": 412,
        "thoughtsTokenCount": 951,
        "cachedContentTokenCount": 1024,
        "toolUsePromptTokenCount": 388,
        "totalTokenCount": 3581,
    }


def fake_vector(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """Deterministic unit vector for a text (same text, same vector, across processes)."""
    rng = random.Random(hashlib.sha256(text.encode("utf-8")).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


# -- holding calls in flight -------------------------------------------------------------


class Gate:
    """Requests that reach a held gate wait until `release()` (or the server stops)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._released = False
        self.arrived = 0

    def _pass(self, stopping: threading.Event) -> None:
        with self._cond:
            self.arrived += 1
            self._cond.notify_all()
            while not self._released and not stopping.is_set():
                self._cond.wait(0.05)

    def release(self) -> None:
        with self._cond:
            self._released = True
            self._cond.notify_all()

    def wait_arrivals(self, count: int = 1, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.arrived >= count, timeout)

    async def arrivals(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait (without blocking the event loop) until `count` requests are held."""
        if not await asyncio.to_thread(self.wait_arrivals, count, timeout):
            raise TimeoutError(f"only {self.arrived} of {count} requests reached the gate in {timeout}s")


# -- per-service state -------------------------------------------------------------------


class ServiceFake:
    """Scripts, rates, latency, gate, counters and recorded requests of one service."""

    name = "service"
    kinds: frozenset[str] = frozenset()

    def __init__(self, server: FakeServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._gate: Gate | None = None
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._script: collections.deque[Fault] = collections.deque()
            self._rates: list[tuple[str, float]] = []
            self._rng = random.Random()
            self._retry_delay: str | None = None
            self._retry_after: str | None = None
            self.latency = 0.0
            self.calls = 0
            self.in_flight = 0
            self.max_in_flight = 0  # the most calls this service had open at once
            self.outcomes: collections.Counter[str] = collections.Counter()
            self.requests: list[RecordedRequest] = []
            gate, self._gate = self._gate, None
        if gate is not None:
            gate.release()

    def script(self, faults: Iterable[str | Fault | dict[str, Any]]) -> None:
        """Queue one-shot responses, used in order by the next calls."""
        items = [as_fault(f) for f in faults]
        for item in items:
            if item.kind not in self.kinds:
                raise ValueError(f"{self.name} has no fault kind {item.kind!r}; known: {sorted(self.kinds)}")
        with self._lock:
            self._script.extend(items)

    def rates(
        self,
        *,
        seed: int | None = None,
        retry_delay: str | None = None,
        retry_after: str | None = None,
        **rates: float,
    ) -> None:
        """Probabilistic faults, e.g. rates(rate_429=0.1, rate_500=0.05, seed=1)."""
        table: list[tuple[str, float]] = []
        for key, rate in rates.items():
            kind = key.removeprefix("rate_")
            if kind not in self.kinds:
                raise ValueError(f"{self.name} has no fault kind {kind!r}")
            if rate:
                table.append((kind, float(rate)))
        if sum(rate for _, rate in table) > 1.0:
            raise ValueError("fault rates add up to more than 1")
        with self._lock:
            self._rates = table
            self._rng = random.Random(seed)
            self._retry_delay = retry_delay
            self._retry_after = retry_after

    def hold(self) -> Gate:
        """Hold the next calls in flight until the returned gate is released."""
        gate = Gate()
        with self._lock:
            old, self._gate = self._gate, gate
        if old is not None:
            old.release()
        return gate

    def release(self) -> None:
        with self._lock:
            gate, self._gate = self._gate, None
        if gate is not None:
            gate.release()

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    def _begin(self, record: RecordedRequest) -> Fault:
        """Record the call, hold it at the gate, apply latency, and pick its response.

        Every `_begin` is paired with an `_end` once the response has been sent."""
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.requests.append(record)
            self._on_record(record)
            refused = self._refuse(record)
            if refused is not None:
                self.outcomes[refused.kind] += 1
            gate = self._gate
        self._server._record(record)
        if refused is not None:  # refused on arrival, as a quota or an outage refuses
            return refused
        if gate is not None:
            gate._pass(self._server._stopping)
        delay = self.latency + self._extra_latency(record)
        if delay:
            self._server._sleep(delay)
        with self._lock:
            fault = self._script.popleft() if self._script else self._roll()
            self.outcomes[fault.kind] += 1
        return fault

    def _roll(self) -> Fault:
        draw = self._rng.random()
        for kind, rate in self._rates:
            if draw < rate:
                return Fault(kind, retry_delay=self._retry_delay, retry_after=self._retry_after)
            draw -= rate
        return Fault("ok")

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _on_record(self, record: RecordedRequest) -> None:
        """Called under the lock for each recorded request."""

    def _refuse(self, record: RecordedRequest) -> Fault | None:
        """Called under the lock on arrival: a fault that answers at once (quota, outage modes)."""
        return None

    def _extra_latency(self, record: RecordedRequest) -> float:
        return 0.0

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls,
                "outcomes": dict(self.outcomes),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
            }


class GeminiFake(ServiceFake):
    name = "gemini"
    kinds = GEMINI_KINDS

    def reset(self) -> None:
        super().reset()
        self.by_title: collections.Counter[str] = collections.Counter()
        self.ok_by_title: collections.Counter[str] = collections.Counter()  # successful answers
        self.answer: Callable[[str], str] = realistic_answer
        self._quota: tuple[int, float, bool] | None = None
        self._accepted_at: collections.deque[float] = collections.deque()
        self._daily: tuple[float | None, int, float] | None = None
        self.daily_reset_at: float | None = None  # wall clock of the daily reset, once refusing
        # Calls the per-minute quota let through, and the wall clock of the first and the last.
        self.quota_accepted = 0
        self.quota_first_at: float | None = None
        self.quota_last_at: float | None = None
        self._outage: str | None = None
        # Extra seconds for calls about these pointer titles (ended early by reset_wake()).
        self.slow_titles: dict[str, float] = {}
        # Service tiers: how many Flex calls to shed next (with shed_status), and the tiers
        # this "model" does not offer (a 400 naming serviceTier).
        self.flex_sheds = 0
        self.shed_status = 503
        self.refused_tiers: set[str] = set()

    def tier_fault(self, record: RecordedRequest) -> Fault | None:
        """The tier's own answer to this call, if it has one (refusal or shed)."""
        with self._lock:
            if record.service_tier is not None and record.service_tier in self.refused_tiers:
                self.outcomes["tier_refused"] += 1
                return Fault(
                    "400", text=f"service_tier {record.service_tier!r} is not supported for this model."
                )
            if record.service_tier == "flex" and self.flex_sheds > 0:
                self.flex_sheds -= 1
                self.outcomes["flex_shed"] += 1
                return Fault(str(self.shed_status))
        return None

    def tiers_for(self, title_prefix: str) -> collections.Counter[str | None]:
        """Service tiers sent for calls whose pointer title starts with `title_prefix`."""
        with self._lock:
            return collections.Counter(
                r.service_tier for r in self.requests if (r.title or "").startswith(title_prefix)
            )

    def _on_record(self, record: RecordedRequest) -> None:
        if record.title is not None:
            self.by_title[record.title] += 1

    # -- quota and outage modes (provider admission) --

    def quota(self, calls: int | None, window: float = 1.0, *, vertex: bool = False) -> None:
        """Accept at most `calls` calls in any `window` seconds (sliding), as a per-minute
        quota does; refused calls get Gemini's 429 with QuotaFailure (quotaId ...PerMinute...,
        quotaValue scaled to a minute) and RetryInfo (when the oldest accepted call leaves the
        window), or with no details at all when `vertex`. Refused calls do not count.
        `calls=None` lifts the quota (the soak's quota phase ends so)."""
        with self._lock:
            self._quota = None if calls is None else (int(calls), float(window), bool(vertex))
            self._accepted_at = collections.deque()

    def daily_quota(self, reset_in: float, allowed: int = 0) -> None:
        """Accept `allowed` more calls, then refuse with a PerDay QuotaFailure for `reset_in`
        seconds counted from the first refusal (RetryInfo counts down to the reset)."""
        with self._lock:
            self._daily = (None, int(allowed), float(reset_in))

    def outage(self, mode: str | None) -> None:
        """Every call fails the same way until `outage(None)`: "key_revoked" (400
        API_KEY_INVALID), "model_gone" (404 NOT_FOUND), "down" (503), "timeout"."""
        if mode not in (None, *OUTAGE_MODES):
            raise ValueError(f"unknown outage mode {mode!r}; known: {sorted(OUTAGE_MODES)}")
        with self._lock:
            self._outage = mode

    def _refuse(self, record: RecordedRequest) -> Fault | None:
        now = time.monotonic()
        if self._outage is not None:
            return Fault(OUTAGE_MODES[self._outage])
        if self._daily is not None:
            reset_at, allowed, reset_in = self._daily
            if reset_at is not None and now >= reset_at:
                self._daily = None
            elif allowed > 0:
                self._daily = (reset_at, allowed - 1, reset_in)
            else:
                if reset_at is None:
                    reset_at = now + reset_in
                    self._daily = (reset_at, 0, reset_in)
                self.daily_reset_at = time.time() + (reset_at - now)
                return Fault(
                    "daily_quota", retry_delay=f"{max(reset_at - now, 0.0):.3f}s", quota_value="1000"
                )
        if self._quota is not None:
            calls, window, vertex = self._quota
            while self._accepted_at and self._accepted_at[0] <= now - window:
                self._accepted_at.popleft()
            if len(self._accepted_at) >= calls:
                free_in = (self._accepted_at[0] + window - now) if self._accepted_at else window
                return Fault(
                    "quota_vertex" if vertex else "quota",
                    retry_delay=f"{max(free_in, 0.001):.3f}s",
                    quota_value=f"{calls * 60 / window:g}",
                )
            self._accepted_at.append(now)
            wall = time.time()
            self.quota_accepted += 1
            self.quota_first_at = self.quota_first_at or wall
            self.quota_last_at = wall
        return None

    def _extra_latency(self, record: RecordedRequest) -> float:
        return self.slow_titles.get(record.title or "", 0.0)

    def _begin(self, record: RecordedRequest) -> Fault:
        fault = super()._begin(record)
        if fault.kind == "ok" and record.title is not None:
            with self._lock:
                self.ok_by_title[record.title] += 1
        return fault

    def calls_for(self, title: str) -> int:
        with self._lock:
            return self.by_title[title]

    def stats(self) -> dict[str, Any]:
        result = super().stats()
        with self._lock:
            result["by_title"] = dict(self.by_title)
            result["ok_by_title"] = dict(self.ok_by_title)
            result["quota"] = {
                "accepted": self.quota_accepted,
                "first_at": self.quota_first_at,
                "last_at": self.quota_last_at,
            }
        return result


class VoyageFake(ServiceFake):
    name = "voyage"
    kinds = VOYAGE_KINDS

    def reset(self) -> None:
        super().reset()
        self.dimensions = EMBEDDING_DIMENSIONS


class StorageFake(ServiceFake):
    name = "storage"
    kinds = STORAGE_KINDS

    def reset(self) -> None:
        super().reset()
        self.objects: dict[str, bytes] = {}

    def put(self, path: str, data: bytes, bucket: str = DEFAULT_BUCKET) -> None:
        with self._lock:
            self.objects[f"{bucket}/{path}"] = data


# -- the HTTP side -----------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # clients that time out or hang up mid-response
            return
        super().handle_error(request, client_address)


def _error_json(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    # -- plumbing --

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        self.server.fake._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return None

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self._call_done()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if getattr(self, "_cut_body", False):
            self._cut_body = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self._drop()
            return
        self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json; charset=UTF-8", headers)

    def _call_done(self) -> None:
        """Leave the service's in-flight count before the client can see the reply, so that
        a client reacting to it at once never finds its finished call still counted."""
        done, self._done = getattr(self, "_done", None), None
        if done is not None:
            done()

    def _drop(self) -> None:
        self._call_done()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _mid_body(self, fault: Fault) -> Fault:
        """For "drop_mid_body": answer as "ok" would, but hang up half way through the body
        (headers promise the whole of it), as a connection lost in transit does."""
        if fault.kind != "drop_mid_body":
            return fault
        self._cut_body = True
        return Fault("ok")

    def _retry_after(self, fault: Fault) -> dict[str, str]:
        return {"Retry-After": fault.retry_after} if fault.retry_after else {}

    def _proxy_408(self) -> None:
        """What a proxy or load balancer in front of any of the services answers."""
        self._send(408, b"Request Timeout", "text/plain")

    def _hang(self, fault: Fault) -> None:
        fake = self.server.fake
        fake._sleep(fault.sleep if fault.sleep is not None else fake.timeout_sleep)
        self._drop()

    def _headers_dict(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    # -- routing --

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/_fake/stats":
            self._json(200, self.server.fake.stats())
        elif path.startswith("/storage/v1/object/"):
            self._storage(path[len("/storage/v1/object/") :])
        else:
            self._json(404, {"error": f"fake server has no route GET {path}"})

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        body = self._body()
        fake = self.server.fake
        gemini = re.fullmatch(r"/(v1|v1beta|v1alpha)/models/(?P<model>[^/:]+):generateContent", path)
        if gemini:
            self._gemini(gemini["model"], body)
        elif path == "/v1/embeddings":
            self._voyage(body)
        elif path.startswith("/_fake/objects/"):
            bucket, _, key = unquote(path[len("/_fake/objects/") :]).partition("/")
            fake.storage.put(key, body, bucket=bucket)
            self._json(201, {"Key": f"{bucket}/{key}", "size": len(body)})
        elif path == "/_fake/reset":
            fake.reset()
            self._json(200, {"reset": True})
        elif match := re.fullmatch(r"/_fake/gemini/(quota|daily_quota|outage)", path):
            try:
                payload = json.loads(body or b"null")
                method = getattr(fake.gemini, match[1])
                if isinstance(payload, dict):
                    method(**payload)
                else:
                    method(payload)
            except (TypeError, ValueError) as exc:
                self._json(400, {"error": str(exc)})
                return
            self._json(200, {"ok": True})
        elif match := re.fullmatch(r"/_fake/(gemini|voyage|storage)/(script|rates)", path):
            service = getattr(fake, match[1])
            try:
                payload = json.loads(body or b"null")
                if match[2] == "script":
                    service.script(payload)
                else:
                    service.rates(**payload)
            except (TypeError, ValueError) as exc:
                self._json(400, {"error": str(exc)})
                return
            self._json(200, {"ok": True})
        else:
            self._json(404, {"error": f"fake server has no route POST {path}"})

    # -- Gemini --

    def _gemini(self, model: str, body: bytes) -> None:
        fake = self.server.fake
        try:
            raw = json.loads(body)
        except ValueError:
            self._json(400, _error_json(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
            return
        record = RecordedRequest("gemini", "POST", self.path, self._headers_dict(), raw, camel_keys(raw))
        record.service_tier = record.camel.get("serviceTier")
        for content in record.camel.get("contents") or []:
            for part in content.get("parts") or []:
                if "text" in part:
                    record.texts.append(part["text"])
                    record.parts.append("text")
                    for line in part["text"].splitlines():
                        if line.startswith(TITLE_PREFIX):
                            record.title = line[len(TITLE_PREFIX) :].strip()
                elif "inlineData" in part:
                    record.parts.append("image")
                    if record.image is None:
                        record.image = urlsafe_decode(part["inlineData"].get("data", ""))
                        record.image_mime = part["inlineData"].get("mimeType")
        key = record.headers.get("x-goog-api-key")
        if fake.gemini_key is not None and key != fake.gemini_key:
            self._json(
                400,
                _error_json(
                    400,
                    "INVALID_ARGUMENT",
                    "API key not valid. Please pass a valid API key.",
                    [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
                ),
            )
            return
        fault = fake.gemini._begin(record)
        fault = fake.gemini.tier_fault(record) or fault
        self._done = fake.gemini._end
        try:
            self._gemini_reply(self._mid_body(fault), model, record.title or "(untitled)")
        finally:
            self._call_done()

    def _gemini_reply(self, fault: Fault, model: str, title: str) -> None:
        kind = fault.kind
        if kind == "timeout":
            self._hang(fault)
        elif kind == "drop":
            self._drop()
        elif kind == "429":
            details = None
            if fault.retry_delay:
                details = [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": fault.retry_delay}
                ]
            self._json(
                429,
                _error_json(
                    429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", details
                ),
                {"Retry-After": fault.retry_after or "2"},
            )
        elif kind == "429_no_retry_after":
            self._json(429, _error_json(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted."))
        elif kind == "408":
            self._proxy_408()
        elif kind == "429_retry_info":
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests"}
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": fault.retry_delay or "30s",
                },
            ]
            message = "You exceeded your current quota, please check your plan and billing details."
            self._json(429, _error_json(429, "RESOURCE_EXHAUSTED", message, details))
        elif kind in ("quota", "daily_quota"):
            quota_id = (
                "GenerateRequestsPerDayPerProjectPerModel"
                if kind == "daily_quota"
                else "GenerateRequestsPerMinutePerProjectPerModel"
            )
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
                            "quotaId": quota_id,
                            "quotaDimensions": {"location": "global", "model": model},
                            "quotaValue": fault.quota_value or "1000",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": fault.retry_delay or "30s",
                },
            ]
            message = (
                "You exceeded your current quota, please check your plan and billing details. "
                f"Quota exceeded for metric: generate_content_paid_tier_requests, limit: {fault.quota_value}"
            )
            self._json(429, _error_json(429, "RESOURCE_EXHAUSTED", message, details))
        elif kind == "quota_vertex":
            message = "Resource exhausted. Please try again later. Please refer to the quota documentation."
            self._json(429, _error_json(429, "RESOURCE_EXHAUSTED", message))
        elif kind == "401_key":
            self._json(
                400,
                _error_json(
                    400,
                    "INVALID_ARGUMENT",
                    "API key expired. Please renew the API key.",
                    [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
                ),
            )
        elif kind == "404":
            self._json(
                404,
                _error_json(
                    404,
                    "NOT_FOUND",
                    f"models/{model} is not found for API version v1beta, or is not supported for generateContent.",
                ),
            )
        elif kind in ("500", "503", "400", "401", "403"):
            status, message = {
                "500": ("INTERNAL", "An internal error has occurred. Please retry or report it."),
                "503": ("UNAVAILABLE", "The model is overloaded. Please try again later."),
                "400": ("INVALID_ARGUMENT", "Request contains an invalid argument."),
                "401": ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
                "403": ("PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
            }[kind]
            self._json(
                int(kind), _error_json(int(kind), status, fault.text or message), self._retry_after(fault)
            )
        elif kind == "safety":
            candidate = {
                "finishReason": "SAFETY",
                "index": 0,
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
                ],
            }
            self._json(200, {"candidates": [candidate], "usageMetadata": _usage(), "modelVersion": model})
        elif kind == "prompt_blocked":
            self._json(
                200,
                {
                    "promptFeedback": {"blockReason": "SAFETY"},
                    "usageMetadata": _usage(),
                    "modelVersion": model,
                },
            )
        elif kind == "empty":
            parts = [{"text": "Nothing legible here.", "thought": True}, {"text": "  \n"}]
            self._json(200, self._generation(parts, "STOP", model))
        elif kind == "huge":
            filler = "".join(f'- NOTE {i}: 5/8" TYPE X GYPSUM BOARD, SEE S-101\n' for i in range(50_000))
            text = realistic_answer(title).replace("## Table Contents", filler + "\n## Table Contents", 1)
            self._json(200, self._generation([{"text": text}], "STOP", model))
        elif kind in ("answer", "max_tokens"):
            text = fault.text if fault.text is not None else realistic_answer(title)
            reason = "MAX_TOKENS" if kind == "max_tokens" else "STOP"
            self._json(200, self._generation([{"text": text}], reason, model))
        else:
            parts = [
                {"text": "Let me zoom in on the dimension string."},
                {
                    "executableCode": {
                        "language": "PYTHON",
                        "code": "from PIL import Image\nimg = Image.open('input.png')\n"
                        "img.crop((0, 0, 400, 200)).resize((1600, 800)).save('zoom.png')",
                    }
                },
                {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "saved zoom.png (1600x800)"}},
                {"text": "The zoomed dimension reads 4'-6\" to the top of the parapet.", "thought": True},
                {"text": self.server.fake.gemini.answer(title), "thoughtSignature": "ZmFrZS1zaWduYXR1cmU="},
            ]
            self._json(200, self._generation(parts, "STOP", model))

    @staticmethod
    def _generation(parts: list[dict[str, Any]], finish_reason: str, model: str) -> dict[str, Any]:
        return {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": finish_reason, "index": 0}
            ],
            "usageMetadata": _usage(),
            "modelVersion": model,
            "responseId": f"fake-{random.getrandbits(48):012x}",
        }

    # -- Voyage --

    def _voyage(self, body: bytes) -> None:
        fake = self.server.fake
        try:
            raw = json.loads(body)
        except ValueError:
            self._json(400, {"detail": "Request body is not valid JSON."})
            return
        record = RecordedRequest("voyage", "POST", self.path, self._headers_dict(), raw, camel_keys(raw))
        if fake.voyage_key is not None and record.headers.get("authorization") != f"Bearer {fake.voyage_key}":
            self._json(401, {"detail": "Provided API key is invalid."})
            return
        fault = fake.voyage._begin(record)
        self._done = fake.voyage._end
        try:
            self._voyage_reply(self._mid_body(fault), raw)
        finally:
            self._call_done()

    def _voyage_reply(self, fault: Fault, raw: dict[str, Any]) -> None:
        fake = self.server.fake
        kind = fault.kind
        if kind == "timeout":
            self._hang(fault)
        elif kind == "drop":
            self._drop()
        elif kind == "429":
            self._json(
                429,
                {"detail": "You have exceeded your TPM rate limit. Please retry after a short wait."},
                {"Retry-After": fault.retry_after or "3"},
            )
        elif kind == "429_no_retry_after":
            self._json(429, {"detail": "You have exceeded your RPM rate limit."})
        elif kind == "408":
            self._proxy_408()
        elif kind in ("500", "503"):
            text = b"Internal Server Error" if kind == "500" else b"Service Unavailable"
            self._send(int(kind), text, "text/plain", self._retry_after(fault))
        elif kind == "400":
            self._json(400, {"detail": "Value 'nonsense' supplied for argument 'model' is not valid."})
        elif kind == "401":
            self._json(401, {"detail": "Provided API key is invalid."})
        elif kind == "403":
            self._json(403, {"detail": "Access to this model is not allowed for this organization."})
        elif kind == "garbled":  # a 200 whose JSON a broken proxy cut short
            self._send(200, b'{"object": "list", "data": [{"object": "embed', "application/json")
        else:
            texts = raw.get("input")
            texts = [texts] if isinstance(texts, str) else list(texts or [])
            requested = raw.get("output_dimension") if isinstance(raw.get("output_dimension"), int) else None
            dims = (fault.dims or 512) if kind == "dims" else (requested or fake.voyage.dimensions)
            # Another model, another vector space: voyage-3's vectors stay what they always were.
            space = "" if raw.get("model") in (None, "voyage-3") else f"{raw.get('model')}:"
            base64_wanted = raw.get("encoding_format") == "base64"
            data = []
            for index, text in enumerate(texts):
                vector = fake_vector(space + str(text), dims or EMBEDDING_DIMENSIONS)
                embedding: Any = vector
                if base64_wanted:
                    embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
                data.append({"object": "embedding", "embedding": embedding, "index": index})
            tokens = sum(max(1, len(str(t)) // 4) for t in texts)
            self._json(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": raw.get("model"),
                    "usage": {"total_tokens": tokens},
                },
            )

    # -- Supabase Storage --

    def _storage(self, rest: str) -> None:
        fake = self.server.fake
        bucket, _, key = rest.partition("/")
        bucket, key = unquote(bucket), unquote(key)
        record = RecordedRequest("storage", "GET", self.path, self._headers_dict())
        expected = fake.storage_key
        auth = record.headers.get("authorization")
        if expected is not None and (
            record.headers.get("apikey") != expected or (auth is not None and auth != f"Bearer {expected}")
        ):
            # What Storage answers for a key it cannot verify.
            self._json(400, {"statusCode": "403", "error": "Unauthorized", "message": "Invalid Compact JWS"})
            return
        fault = fake.storage._begin(record)
        self._done = fake.storage._end
        try:
            self._storage_reply(self._mid_body(fault), f"{bucket}/{key}")
        finally:
            self._call_done()

    def _storage_reply(self, fault: Fault, object_key: str) -> None:
        fake = self.server.fake
        kind = fault.kind
        not_found = {
            "statusCode": "404",
            "code": "NoSuchKey",
            "error": "not_found",
            "message": "Object not found",
        }
        data = fake.storage.objects.get(object_key)
        if kind == "timeout":
            self._hang(fault)
        elif kind == "drop":
            self._drop()
        elif kind == "404":
            self._json(404, not_found)
        elif kind == "400":
            self._json(400, {"statusCode": "400", "error": "InvalidRequest", "message": "Invalid object key"})
        elif kind == "400_not_found" or (kind in ("ok", "no_length") and data is None):
            self._json(400, not_found)
        elif kind in ("401", "403"):
            self._json(
                int(kind), {"statusCode": kind, "error": "Unauthorized", "message": "invalid signature"}
            )
        elif kind == "429":
            self._json(
                429,
                {"statusCode": "429", "error": "too_many_requests", "message": "Too many requests"},
                {"Retry-After": fault.retry_after or "4"},
            )
        elif kind == "429_no_retry_after":
            self._json(
                429, {"statusCode": "429", "error": "too_many_requests", "message": "Too many requests"}
            )
        elif kind == "408":
            self._proxy_408()
        elif kind in ("500", "503"):
            self._json(
                int(kind),
                {"statusCode": kind, "error": "internal", "message": "Internal Server Error"},
                self._retry_after(fault),
            )
        elif kind == "body":
            self._send(200, fault.body or b"", "application/octet-stream")
        elif kind == "no_length":
            assert data is not None
            self._stream(iter(data[i : i + 65536] for i in range(0, len(data), 65536)))
        elif kind == "endless":
            self._stream(self._endless())
        else:
            assert data is not None
            self._send(200, data, "image/png", {"Cache-Control": "no-cache"})

    def _endless(self) -> Iterable[bytes]:
        yield png_header(100, 100)[:-12]
        chunk = b"\x00" * 65536
        for _ in range(16384):  # 1 GiB at most
            if self.server.fake._stopping.is_set():
                return
            yield chunk

    def _stream(self, chunks: Iterable[bytes]) -> None:
        """A body without Content-Length (chunked), as a proxy that strips it would send."""
        self._call_done()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in chunks:
                self.wfile.write(f"{len(chunk):x}\r\n".encode("ascii") + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True


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
        self.gemini_key = gemini_key  # when set, other keys are refused the way each service does
        self.voyage_key = voyage_key
        self.storage_key = storage_key
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._connections: set[socket.socket] = set()
        self._record_lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.gemini = GeminiFake(self)
        self.voyage = VoyageFake(self)
        self.storage = StorageFake(self)
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.fake = self
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

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
        for service in (self.gemini, self.voyage, self.storage):
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
        for service in (self.gemini, self.voyage, self.storage):
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
