"""Fixtures for the fake Gemini / Voyage / Storage server.

One server runs for the whole session (starting threads per test would cost more than the
tests); `fake_server` resets it before each test, so every test starts with no scripts,
no rates, no latency, no stored objects and no recorded requests. Tests that need a
server of their own can build one with `tests.fakes.server.FakeServer`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from pgqueue_enricher.providers.gemini import GeminiDescriber
from pgqueue_enricher.settings import Settings
from tests.fakes.server import FakeServer

# Recognisable values, so a test can search any output for them.
FAKE_GEMINI_KEY = "fake-gemini-key-7f3a9c21d4"
FAKE_VOYAGE_KEY = "pa-fake-voyage-key-51d2e8b6"
FAKE_SUPABASE_KEY = "fake-supabase-service-key-b04c6e93"
FAKE_KEYS = (FAKE_GEMINI_KEY, FAKE_VOYAGE_KEY, FAKE_SUPABASE_KEY)

# Short enough that timeout tests are fast, long enough for a loaded CI machine.
FAKE_TIMEOUT = 3.0


@pytest.fixture(scope="session")
def fake_server_session() -> Iterator[FakeServer]:
    server = FakeServer(
        timeout_sleep=FAKE_TIMEOUT * 3,
        gemini_key=FAKE_GEMINI_KEY,
        voyage_key=FAKE_VOYAGE_KEY,
        storage_key=FAKE_SUPABASE_KEY,
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_server(fake_server_session: FakeServer) -> Iterator[FakeServer]:
    """The session's fake server, reset for this test (and again after it)."""
    fake_server_session.reset()
    yield fake_server_session
    fake_server_session.reset()


@pytest.fixture
def provider_settings(fake_server: FakeServer) -> Settings:
    """Settings pointed at the fake; `.env` and the environment are ignored."""
    base = fake_server.base_url
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        enricher_provider="gemini",
        gemini_api_key=FAKE_GEMINI_KEY,
        gemini_base_url=base,
        voyage_api_key=FAKE_VOYAGE_KEY,
        voyage_base_url=base + "/v1",
        supabase_url=base,
        supabase_service_key=FAKE_SUPABASE_KEY,
        storage_bucket="project-files",
        storage_dir=None,
        pass2_gemini_timeout=FAKE_TIMEOUT,
        pass2_voyage_timeout=FAKE_TIMEOUT,
        pass2_storage_timeout=FAKE_TIMEOUT,
    )


@pytest.fixture
async def describer(provider_settings: Settings) -> AsyncIterator[GeminiDescriber]:
    """A Gemini client on the fake, closed after the test."""
    provider = GeminiDescriber(provider_settings)
    yield provider
    await provider.aclose()
