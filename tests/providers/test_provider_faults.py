"""One conformance table: every HTTP fault against Gemini, Voyage and Supabase Storage, each
through its real client (google-genai, voyageai, httpx) and the wire-level fake.

A row is a fault the network or the service can produce; a cell is that fault met by one
provider. Every cell must say transient or permanent the same way for all three, carry the
server's requested wait when it gave one, make exactly the calls it should (the SDKs' own
retries are off: the queue owns retries), and never put a key in the failure or a log line.
What each service says in its own way (Gemini's RetryInfo and API_KEY_INVALID, Voyage's
wrong dimensions, Storage's not-found in a 400) is tested beside that provider; that those
show no key either is checked here, once for all three.
"""

from __future__ import annotations

import email.utils
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from pgqueue_enricher.errors import EnrichmentFailure
from pgqueue_enricher.providers.gemini import GeminiDescriber
from pgqueue_enricher.providers.http_failures import (
    is_transient_status,
    parse_duration,
    parse_retry_after,
)
from pgqueue_enricher.providers.storage import SupabaseStore
from pgqueue_enricher.providers.types import EnrichmentInput
from pgqueue_enricher.providers.voyage import VoyageEmbedder
from pgqueue_enricher.settings import Settings
from tests.fakes.pytest_plugin import FAKE_KEYS
from tests.fakes.server import FakeServer, Fault, ServiceFake, tiny_png
from tests.support.helpers import raised_failure

CROP = tiny_png(12, 9)
CROP_PATH = "crops/a.png"
TEXT = "Parapet Wall Section\nPage: A-501\n\n## Description\nA wall."
# Short enough that the timeout rows are fast; the fake holds a "timeout" for 3x FAKE_TIMEOUT.
TIMEOUT = 0.3


@dataclass(frozen=True)
class Provider:
    """How to build and call one provider, and the words it uses for each role of failure."""

    name: str
    key_setting: str  # the settings field holding the key
    key_name: str  # the environment variable a person must check
    timeout_setting: str
    timeout_name: str
    url_setting: str
    url_suffix: str
    build: Callable[[Settings], Any]
    call: Callable[[Any], Awaitable[object]]
    # role -> kind, where it differs from the role's name
    kinds: dict[str, str]
    # role (or row id, which wins) -> how the reason starts; {status} is the row's status
    starts: dict[str, str]
    bad_request_reason: str  # the whole reason for the fake's plain 400

    def service(self, fake: FakeServer) -> ServiceFake:
        return getattr(fake, self.name)

    def kind(self, role: str) -> str:
        return self.kinds.get(role, role)

    def start(self, row: Row) -> str:
        return self.starts.get(row.id, self.starts[row.role]).format(status=row.status or "")


def _item() -> EnrichmentInput:
    return EnrichmentInput("p-1", CROP, None, "A-501 Wall Sections", "Architectural", "Parapet Wall Section")


GEMINI = Provider(
    name="gemini",
    key_setting="gemini_api_key",
    key_name="GEMINI_API_KEY",
    timeout_setting="pass2_gemini_timeout",
    timeout_name="PASS2_GEMINI_TIMEOUT",
    url_setting="gemini_base_url",
    url_suffix="",
    build=GeminiDescriber,
    call=lambda provider: provider.describe(_item()),
    kinds={"unavailable": "gemini_unavailable"},
    starts={
        "rate_limited": "Gemini rate limit or quota reached (429 RESOURCE_EXHAUSTED): ",
        "unavailable": "Gemini is unavailable ({status} ",
        "timeout": "Gemini did not answer within",
        "connection": "could not reach Gemini (",
        "connection refused": "could not reach Gemini (ConnectError",
        "auth": "Gemini refused the API key (",
        "bad_request": "Gemini rejected the request (",
    },
    bad_request_reason=(
        "Gemini rejected the request (400 INVALID_ARGUMENT): Request contains an invalid argument."
    ),
)
VOYAGE = Provider(
    name="voyage",
    key_setting="voyage_api_key",
    key_name="VOYAGE_API_KEY",
    timeout_setting="pass2_voyage_timeout",
    timeout_name="PASS2_VOYAGE_TIMEOUT",
    url_setting="voyage_base_url",
    url_suffix="/v1",
    build=VoyageEmbedder,
    call=lambda provider: provider.embed(TEXT),
    kinds={"unavailable": "voyage_unavailable"},
    starts={
        "rate_limited": "Voyage rate limit reached (HTTP 429): ",
        "unavailable": "Voyage is unavailable (HTTP {status})",
        "timeout": "Voyage did not answer in time",
        "connection": "could not reach Voyage",
        "auth": "Voyage refused the API key (HTTP {status}",
        "bad_request": "Voyage rejected the request (HTTP 400)",
    },
    bad_request_reason=(
        "Voyage rejected the request (HTTP 400): Value 'nonsense' supplied for argument 'model' is not valid."
    ),
)
STORAGE = Provider(
    name="storage",
    key_setting="supabase_service_key",
    key_name="SUPABASE_SERVICE_KEY",
    timeout_setting="pass2_storage_timeout",
    timeout_name="PASS2_STORAGE_TIMEOUT",
    url_setting="supabase_url",
    url_suffix="",
    build=SupabaseStore,
    call=lambda provider: provider.fetch(CROP_PATH),
    kinds={"unavailable": "storage_unavailable", "auth": "storage_auth", "bad_request": "storage_error"},
    starts={
        "rate_limited": "Supabase Storage answered HTTP 429 for ",
        "unavailable": "Supabase Storage answered HTTP {status} for ",
        "timeout": "Supabase Storage did not answer within",
        "connection": "could not reach Supabase Storage at ",
        "connection refused": "could not reach Supabase Storage at http://127.0.0.1:",
        "auth": "Supabase Storage refused the service key (HTTP {status}",
        "bad_request": "Supabase Storage refused the download of ",
    },
    bad_request_reason=(
        "Supabase Storage refused the download of 'project-files/crops/a.png' (HTTP 400: Invalid object key)"
    ),
)
PROVIDERS = [GEMINI, VOYAGE, STORAGE]


def _in_two_minutes() -> str:
    return email.utils.formatdate(time.time() + 120, usegmt=True)


@dataclass(frozen=True)
class Row:
    """One fault, and what every provider must make of it."""

    id: str
    fault: Callable[[], Fault] | None  # None: the request never reaches the fake
    role: str
    transient: bool
    status: int | None = None  # an HTTP status the reason must name
    retry_after: tuple[float, float] | None = None  # (low, high] bounds of the requested wait
    calls: int | None = 1  # calls the fake must see (None: not countable)
    settings: Callable[[Provider, str], dict[str, Any]] = field(default=lambda provider, closed: {})


ROWS = [
    Row("429 with Retry-After seconds", lambda: Fault("429", retry_after="7"), "rate_limited", True,
        status=429, retry_after=(6.999, 7.0)),
    Row("429 with Retry-After as an HTTP date", lambda: Fault("429", retry_after=_in_two_minutes()),
        "rate_limited", True, status=429, retry_after=(100.0, 121.0)),
    Row("429 without Retry-After", lambda: Fault("429_no_retry_after"), "rate_limited", True, status=429),
    Row("408 from a proxy", lambda: Fault("408"), "unavailable", True, status=408),
    Row("500", lambda: Fault("500"), "unavailable", True, status=500),
    Row("503", lambda: Fault("503"), "unavailable", True, status=503),
    Row("503 with Retry-After", lambda: Fault("503", retry_after="5"), "unavailable", True, status=503,
        retry_after=(4.999, 5.0)),
    Row("timeout", lambda: Fault("timeout"), "timeout", True,
        settings=lambda provider, closed: {provider.timeout_setting: TIMEOUT}),
    Row("connection refused", None, "connection", True, calls=0,
        settings=lambda provider, closed: {provider.url_setting: closed + provider.url_suffix}),
    Row("dropped before the response", lambda: Fault("drop"), "connection", True),
    Row("dropped mid-body", lambda: Fault("drop_mid_body"), "connection", True),
    Row("401", lambda: Fault("401"), "auth", False, status=401),
    Row("403", lambda: Fault("403"), "auth", False, status=403),
    Row("400", lambda: Fault("400"), "bad_request", False, status=400),
    Row("a key the service refuses", None, "auth", False, calls=None,
        settings=lambda provider, closed: {provider.key_setting: SecretStr(f"wrong-{provider.name}-key-0000")}),
]  # fmt: skip


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.id)
@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda provider: provider.name)
async def test_every_http_fault_means_the_same_for_every_provider_and_shows_no_key(
    provider: Provider,
    row: Row,
    fake_server: FakeServer,
    provider_settings: Settings,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_server.storage.put(CROP_PATH, CROP)
    settings = provider_settings.model_copy(update=row.settings(provider, closed_port_url()))
    key = getattr(settings, provider.key_setting).get_secret_value()
    service = provider.service(fake_server)
    if row.fault is not None:
        service.script([row.fault()])
    client = provider.build(settings)
    started = time.monotonic()
    try:
        failure = await raised_failure(provider.call(client))
    finally:
        await client.aclose()
    seconds = time.monotonic() - started

    assert failure.transient is row.transient, failure.reason
    assert failure.kind == provider.kind(row.role), failure.reason
    assert failure.reason.startswith(provider.start(row)), failure.reason
    if row.status is not None:
        assert str(row.status) in failure.reason
    if row.retry_after is None:
        assert failure.retry_after is None
        assert "retry after" not in failure.reason
    else:
        low, high = row.retry_after
        assert failure.retry_after is not None and low < failure.retry_after <= high
        assert f"; retry after {failure.retry_after:g}s" in failure.reason
    if row.calls is not None:
        assert service.calls == row.calls  # the SDK did not retry on its own
    if row.role == "timeout":
        assert provider.timeout_name in failure.reason
        assert seconds < 2.5  # the provider's timeout ended it, not the fake's 9 s hold
    if row.role == "auth":
        assert provider.key_name in failure.reason
        assert "CIMultiDict" not in failure.reason and "{" not in failure.reason  # no raw response
    if row.id == "400":
        assert failure.reason == provider.bad_request_reason

    assert_no_key_shown([failure], caplog, capsys, key)
    # Nothing needed scrubbing: the key never went into the message in the first place.
    assert "***" not in failure.reason


def assert_no_key_shown(
    failures: list[EnrichmentFailure],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    *keys: str,
) -> None:
    """No key in the failures, in any log record, or in anything printed."""
    captured = capsys.readouterr()
    shown = "\n".join(
        [*(f"{f} {f.reason} {f!r}" for f in failures), caplog.text, captured.out, captured.err,
         *(f"{r.msg} {r.args}" for r in caplog.records)]
    )  # fmt: skip
    for secret in {*keys, *FAKE_KEYS}:
        assert secret not in shown


# What each service says in its own way, beyond the shared table; "ok" answers in between.
@pytest.mark.parametrize(
    ("provider", "kinds"),
    [
        pytest.param(GEMINI, ["429_retry_info", "safety", "prompt_blocked", "empty", "ok"], id="gemini"),
        pytest.param(VOYAGE, ["dims", "garbled"], id="voyage"),
        pytest.param(STORAGE, ["404", "400_not_found"], id="storage"),
    ],
)
async def test_no_service_specific_failure_shows_a_key(
    provider: Provider,
    kinds: list[str],
    fake_server: FakeServer,
    provider_settings: Settings,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_server.storage.put(CROP_PATH, CROP)
    client = provider.build(provider_settings.model_copy(update={provider.timeout_setting: TIMEOUT}))
    provider.service(fake_server).script(kinds)
    failures = []
    try:
        for _ in kinds:
            try:
                await provider.call(client)
            except EnrichmentFailure as failure:
                failures.append(failure)
    finally:
        await client.aclose()
    assert len(failures) == len(kinds) - kinds.count("ok")
    assert_no_key_shown(failures, caplog, capsys)


# -- the shared rules, without a network ------------------------------------------------


@pytest.mark.parametrize(
    ("status", "transient"),
    [(408, True), (429, True), (500, True), (502, True), (503, True), (599, True),
     (400, False), (401, False), (403, False), (404, False), (409, False), (422, False), (499, False),
     (200, False), (302, False), (600, False), (None, False)],
)  # fmt: skip
def test_408_429_and_5xx_are_the_transient_statuses(status: int | None, transient: bool) -> None:
    assert is_transient_status(status) is transient


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    now = time.time()
    assert parse_retry_after(email.utils.formatdate(now + 60, usegmt=True), now=now) == pytest.approx(
        60, abs=1
    )
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_durations_of_google_error_bodies_are_read() -> None:
    assert parse_duration("30s") == 30.0
    assert parse_duration(" 1.5s ") == 1.5
    assert parse_duration({"seconds": 2, "nanos": 500_000_000}) == 2.5
    assert parse_duration("30") is None
    assert parse_duration({"seconds": "soon"}) is None
    assert parse_duration(None) is None
