"""What the three service fakes share: faults, recorded requests, the per-service state
(scripts, rates, latency, gate, counters) and the HTTP plumbing of one exchange.

Each service module (gemini, voyage, storage) subclasses `ServiceFake` and lists the routes
it answers; `tests.fakes.server.FakeServer` serves them all on one loopback port.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.server import FakeServer


@dataclass
class Fault:
    """One scripted response. `kind` is one of the service's kinds (see `ServiceFake.kinds`)."""

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
    """snake_case keys -> camelCase (the SDKs send both spellings)."""
    if isinstance(value, dict):
        return {
            re.sub(r"_([a-z0-9])", lambda m: m[1].upper(), str(k)): camel_keys(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


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

# A route: the method, the full-match path pattern, and what answers it.
Route = tuple[str, str, Callable[["Exchange", re.Match[str], bytes], None]]


class ServiceFake:
    """Scripts, rates, latency, gate, counters and recorded requests of one service.

    `key`, when set, is the only credential the service accepts; others are refused the
    way the real service refuses them."""

    name = "service"
    kinds: frozenset[str] = frozenset()

    def __init__(self, server: FakeServer, key: str | None = None) -> None:
        self._server = server
        self.key = key
        self._lock = threading.Lock()
        self._gate: Gate | None = None
        self.reset()

    def routes(self) -> list[Route]:
        """The wire routes this service answers."""
        return []

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


# -- the HTTP side -----------------------------------------------------------------------


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # clients that time out or hang up mid-response
            return
        super().handle_error(request, client_address)


class Exchange(BaseHTTPRequestHandler):
    """One request and its reply: routing to the fake's routes, and the ways to answer
    (JSON, raw bytes, a chunked stream, a hang, a dropped connection)."""

    protocol_version = "HTTP/1.1"
    server: FakeHTTPServer

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

    @property
    def fake(self) -> FakeServer:
        return self.server.fake

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._route("GET", b"")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST", self._body())

    def _route(self, method: str, body: bytes) -> None:
        path = self.path.split("?", 1)[0]
        for route_method, pattern, handler in self.fake.routes:
            if route_method == method and (match := re.fullmatch(pattern, path)):
                handler(self, match, body)
                return
        self.json(404, {"error": f"fake server has no route {method} {path}"})

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

    def headers_dict(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def serve(self, service: ServiceFake, record: RecordedRequest, reply: Callable[[Fault], None]) -> None:
        """Run one call of `service` through its script/rates and answer with `reply`."""
        fault = service._begin(record)
        self._done: Callable[[], None] | None = service._end
        try:
            reply(self._mid_body(fault))
        finally:
            self._call_done()

    def send(
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
            self.drop()
            return
        self.wfile.write(body)

    def json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(payload).encode("utf-8"), "application/json; charset=UTF-8", headers)

    def stream(self, chunks: Iterable[bytes]) -> None:
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

    def drop(self) -> None:
        self._call_done()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def hang(self, fault: Fault) -> None:
        fake = self.fake
        fake._sleep(fault.sleep if fault.sleep is not None else fake.timeout_sleep)
        self.drop()

    def proxy_408(self) -> None:
        """What a proxy or load balancer in front of any of the services answers."""
        self.send(408, b"Request Timeout", "text/plain")

    @staticmethod
    def retry_after(fault: Fault) -> dict[str, str]:
        return {"Retry-After": fault.retry_after} if fault.retry_after else {}

    def common(self, fault: Fault) -> bool:
        """Answer the faults every service shares ("timeout", "drop", "408"); False if not one."""
        if fault.kind == "timeout":
            self.hang(fault)
        elif fault.kind == "drop":
            self.drop()
        elif fault.kind == "408":
            self.proxy_408()
        else:
            return False
        return True

    def _call_done(self) -> None:
        """Leave the service's in-flight count before the client can see the reply, so that
        a client reacting to it at once never finds its finished call still counted."""
        done, self._done = getattr(self, "_done", None), None
        if done is not None:
            done()

    def _mid_body(self, fault: Fault) -> Fault:
        """For "drop_mid_body": answer as "ok" would, but hang up half way through the body
        (headers promise the whole of it), as a connection lost in transit does."""
        if fault.kind != "drop_mid_body":
            return fault
        self._cut_body = True
        return Fault("ok")
