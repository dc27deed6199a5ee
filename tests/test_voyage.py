"""VoyageEmbedder through the real voyageai SDK against the fake server."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from pgqueue_enricher.errors import EnrichmentFailure, PermanentFailure, TransientFailure
from pgqueue_enricher.providers.types import EMBEDDING_DIMENSIONS
from pgqueue_enricher.providers.voyage import VoyageEmbedder
from pgqueue_enricher.settings import Settings
from tests.fakes.pytest_plugin import FAKE_KEYS, FAKE_VOYAGE_KEY
from tests.fakes.server import FakeServer, Fault, fake_vector
from tests.helpers import raised_failure

TEXT = "Parapet Wall Section\nPage: A-501\nDiscipline: Architectural\n\n## Description\nA wall."


@pytest.fixture
async def embedder(provider_settings: Settings) -> AsyncIterator[VoyageEmbedder]:
    provider = VoyageEmbedder(provider_settings)
    yield provider
    await provider.aclose()


async def failure_of(provider: VoyageEmbedder) -> EnrichmentFailure:
    return await raised_failure(provider.embed(TEXT))


async def test_embedding_is_the_1024_dim_vector_of_the_text(
    fake_server: FakeServer, embedder: VoyageEmbedder
) -> None:
    embedding = await embedder.embed(TEXT)
    assert len(embedding.vector) == EMBEDDING_DIMENSIONS
    # The SDK asked for base64 float32; the decoded vector matches to float32 precision.
    assert embedding.vector == pytest.approx(fake_vector(TEXT), abs=1e-6)
    assert embedding.model == "voyage-3"
    assert embedding.total_tokens > 0


async def test_request_is_one_document_for_the_configured_model(
    fake_server: FakeServer, embedder: VoyageEmbedder
) -> None:
    await embedder.embed(TEXT)
    request = fake_server.voyage.last
    assert request.path == "/v1/embeddings"
    assert request.json["input"] == [TEXT]
    assert request.json["model"] == "voyage-3"
    assert request.json["input_type"] == "document"
    assert request.headers["authorization"] == f"Bearer {FAKE_VOYAGE_KEY}"


async def test_429_is_transient_with_retry_after_and_not_retried_by_the_sdk(
    fake_server: FakeServer, embedder: VoyageEmbedder
) -> None:
    fake_server.voyage.script([Fault("429", retry_after="3")])
    failure = await failure_of(embedder)
    assert isinstance(failure, TransientFailure)
    assert failure.kind == "rate_limited"
    assert failure.retry_after == 3.0
    assert fake_server.voyage.calls == 1


@pytest.mark.parametrize("status", ["500", "503"])
async def test_server_errors_are_transient(
    fake_server: FakeServer, embedder: VoyageEmbedder, status: str
) -> None:
    fake_server.voyage.script([status])
    failure = await failure_of(embedder)
    assert isinstance(failure, TransientFailure)
    assert failure.kind == "voyage_unavailable"
    assert fake_server.voyage.calls == 1


async def test_wrong_dimensions_are_a_permanent_configuration_error(
    fake_server: FakeServer, embedder: VoyageEmbedder
) -> None:
    fake_server.voyage.script([Fault("dims", dims=512)])
    failure = await failure_of(embedder)
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "config"
    assert failure.reason.startswith("VOYAGE_MODEL 'voyage-3' returned 512-dimensional vectors;")
    assert "1024" in failure.reason


async def test_400_is_permanent(fake_server: FakeServer, embedder: VoyageEmbedder) -> None:
    fake_server.voyage.script(["400"])
    failure = await failure_of(embedder)
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "bad_request"
    assert "is not valid" in failure.reason


async def test_a_refused_key_is_permanent_and_never_printed(
    fake_server: FakeServer, provider_settings: Settings
) -> None:
    wrong = "pa-wrong-voyage-key-2222-3333"
    provider = VoyageEmbedder(provider_settings.model_copy(update={"voyage_api_key": SecretStr(wrong)}))
    failure = await failure_of(provider)
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "auth"
    assert "VOYAGE_API_KEY" in failure.reason
    assert wrong not in failure.reason and "***" not in failure.reason


async def test_a_timeout_is_transient_and_fast(fake_server: FakeServer, provider_settings: Settings) -> None:
    provider = VoyageEmbedder(provider_settings.model_copy(update={"pass2_voyage_timeout": 0.3}))
    fake_server.voyage.script(["timeout"])
    started = time.monotonic()
    failure = await failure_of(provider)
    assert isinstance(failure, TransientFailure)
    assert failure.kind == "timeout"
    assert time.monotonic() - started < 2.5
    assert fake_server.voyage.calls == 1


async def test_connection_refused_and_dropped_connections_are_transient(
    fake_server: FakeServer, provider_settings: Settings, embedder: VoyageEmbedder
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    refused = await failure_of(
        VoyageEmbedder(provider_settings.model_copy(update={"voyage_base_url": closed}))
    )
    assert isinstance(refused, TransientFailure)
    assert refused.kind == "connection"

    fake_server.voyage.script(["drop"])
    dropped = await failure_of(embedder)
    assert isinstance(dropped, TransientFailure)


async def test_no_failure_message_log_or_output_contains_a_key(
    fake_server: FakeServer,
    provider_settings: Settings,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = VoyageEmbedder(provider_settings.model_copy(update={"pass2_voyage_timeout": 0.3}))
    kinds = ["429", "500", "503", "400", "401", "timeout", "drop", "dims"]
    fake_server.voyage.script(kinds)
    reasons = []
    for _ in kinds:
        failure = await failure_of(provider)
        reasons.append(f"{failure} {failure.reason!r} {failure!r}")
    captured = capsys.readouterr()
    everything = "\n".join(
        [*reasons, caplog.text, *(str(r.args) for r in caplog.records), captured.out, captured.err]
    )
    for key in FAKE_KEYS:
        assert key not in everything
