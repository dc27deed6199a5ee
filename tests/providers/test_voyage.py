"""VoyageEmbedder through the real voyageai SDK against the fake server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pgqueue_enricher.errors import PermanentFailure, TransientFailure
from pgqueue_enricher.providers.types import EMBEDDING_DIMENSIONS
from pgqueue_enricher.providers.voyage import VoyageEmbedder
from pgqueue_enricher.settings import Settings
from tests.fakes.pytest_plugin import FAKE_VOYAGE_KEY
from tests.fakes.server import FakeServer, Fault, fake_vector
from tests.support.helpers import raised_failure

TEXT = "Parapet Wall Section\nPage: A-501\nDiscipline: Architectural\n\n## Description\nA wall."


@pytest.fixture
async def embedder(provider_settings: Settings) -> AsyncIterator[VoyageEmbedder]:
    provider = VoyageEmbedder(provider_settings)
    yield provider
    await provider.aclose()


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


async def test_wrong_dimensions_are_a_permanent_configuration_error(
    fake_server: FakeServer, embedder: VoyageEmbedder
) -> None:
    fake_server.voyage.script([Fault("dims", dims=512)])
    failure = await raised_failure(embedder.embed(TEXT))
    assert isinstance(failure, PermanentFailure)
    assert failure.kind == "config"
    assert failure.reason.startswith("VOYAGE_MODEL 'voyage-3' returned 512-dimensional vectors;")
    assert "1024" in failure.reason


async def test_a_status_the_sdk_has_no_class_for_quotes_voyages_detail_not_the_raw_response(
    fake_server: FakeServer, embedder: VoyageEmbedder
) -> None:
    fake_server.voyage.script(["403"])  # the SDK's message for it also holds the body and headers
    failure = await raised_failure(embedder.embed(TEXT))
    assert failure.reason == (
        "Voyage refused the API key (HTTP 403): check VOYAGE_API_KEY "
        "(Access to this model is not allowed for this organization.)"
    )


async def test_a_success_whose_body_cannot_be_read_is_transient(
    fake_server: FakeServer, embedder: VoyageEmbedder
) -> None:
    fake_server.voyage.script(["garbled"])  # the SDK reports it as an APIError with status 200
    failure = await raised_failure(embedder.embed(TEXT))
    assert isinstance(failure, TransientFailure)
    assert failure.kind == "bad_response"
    assert failure.reason == "Voyage sent a response that could not be read (HTTP 200)"
