"""Embedding a pointer's text with Voyage, one try per attempt (the queue owns retries).

`pointers.embedding` is `vector(1024)`: a model configured with another dimension would
fail every write-back with a database error, so the length is checked here and reported
as a configuration problem naming VOYAGE_MODEL.
"""

from __future__ import annotations

import asyncio

import aiohttp
import voyageai
import voyageai.error as voyage_errors

from pgqueue_enricher.errors import EnrichmentFailure, PermanentFailure, TransientFailure
from pgqueue_enricher.providers.checks import check_key
from pgqueue_enricher.providers.http_failures import (
    is_transient_status,
    retry_after_header,
    transient_status_failure,
)
from pgqueue_enricher.providers.quota import admission_scope
from pgqueue_enricher.providers.types import EMBEDDING_DIMENSIONS, Embedding
from pgqueue_enricher.redact import register_settings_secrets
from pgqueue_enricher.settings import ConfigError, Settings

_DEADLINE_SLACK = 5.0
_MESSAGE_CHARS = 240


def _message(exc: voyage_errors.VoyageError) -> str:
    """Voyage's own `detail` when the body had one: for statuses it has no class for (403,
    408, ...) the SDK's message also carries the raw body and the response headers."""
    body = exc.json_body
    detail = body.get("detail") if isinstance(body, dict) else None
    text = detail if isinstance(detail, str) else exc.user_message
    text = text if isinstance(text, str) else ""
    return " ".join(text.split())[:_MESSAGE_CHARS] or "no message"


# The status each of the SDK's error classes stands for, for an error that did not keep it.
_CLASS_STATUS: tuple[tuple[type[voyage_errors.VoyageError], int], ...] = (
    (voyage_errors.RateLimitError, 429),
    (voyage_errors.ServerError, 500),
    (voyage_errors.ServiceUnavailableError, 503),
    (voyage_errors.AuthenticationError, 401),
)


def _status(exc: voyage_errors.VoyageError) -> int | None:
    if isinstance(exc.http_status, int):
        return exc.http_status
    return next((status for cls, status in _CLASS_STATUS if isinstance(exc, cls)), None)


def classify_voyage_error(exc: voyage_errors.VoyageError) -> EnrichmentFailure:
    if isinstance(exc, voyage_errors.Timeout):
        return TransientFailure(
            "timeout",
            "Voyage did not answer in time (PASS2_VOYAGE_TIMEOUT)",
            scope="outage",
            provider="voyage",
        )
    if isinstance(exc, voyage_errors.APIConnectionError):
        return TransientFailure(
            "connection", f"could not reach Voyage: {_message(exc)}", scope="outage", provider="voyage"
        )
    status = _status(exc)
    label = f"HTTP {status}" if status else type(exc).__name__
    if status is not None and 200 <= status <= 299:  # the SDK's APIError for a body it cannot parse
        return TransientFailure("bad_response", f"Voyage sent a response that could not be read ({label})")
    if is_transient_status(status):
        sentence = (
            f"Voyage rate limit reached ({label}): {_message(exc)}"
            if status == 429
            else f"Voyage is unavailable ({label})"
        )
        failure = transient_status_failure(
            "voyage", status, sentence, retry_after=retry_after_header(exc.headers)
        )
        return admission_scope(failure, "voyage")  # provider admission
    if status in (401, 403):
        return PermanentFailure(
            "auth",
            f"Voyage refused the API key ({label}): check VOYAGE_API_KEY ({_message(exc)})",
            scope="systemic",
            provider="voyage",
        )
    return PermanentFailure("bad_request", f"Voyage rejected the request ({label}): {_message(exc)}")


class VoyageEmbedder:
    name = "voyage"

    def __init__(self, settings: Settings) -> None:
        if settings.voyage_api_key is None:
            raise ConfigError("VOYAGE_API_KEY is not set (or set ENRICHER_PROVIDER=local)")
        register_settings_secrets(settings)
        self._api_key = settings.voyage_api_key
        self._model = settings.voyage_model
        self.model = settings.voyage_model  # what `embed` uses (embedding_switch.py may ask another)
        self._timeout = settings.pass2_voyage_timeout
        self._client = voyageai.AsyncClient(
            api_key=settings.voyage_api_key.get_secret_value(),
            max_retries=1,  # the total number of tries
            timeout=settings.pass2_voyage_timeout,
            base_url=settings.voyage_base_url or None,
        )

    async def open(self) -> None:
        """The key's shape only: a request would cost quota and need the network at start-up."""
        check_key("VOYAGE_API_KEY", self._api_key)

    async def embed(self, text: str) -> Embedding:
        return await self.embed_as(text, self._model, None)

    async def embed_as(self, text: str, model: str, dimensions: int | None) -> Embedding:
        """`text` embedded by `model`: the embedding switch writes a second model's vectors
        beside the configured one's. `dimensions` None: the model's default (1024), sent as
        no `output_dimension` at all, since voyage-3 takes none."""
        options = {} if dimensions is None else {"output_dimension": dimensions}
        try:
            async with asyncio.timeout(self._timeout + _DEADLINE_SLACK):
                result = await self._client.embed([text], model=model, input_type="document", **options)
        except voyage_errors.VoyageError as exc:
            raise classify_voyage_error(exc) from None
        except TimeoutError:
            raise TransientFailure(
                "timeout",
                "Voyage did not answer in time (PASS2_VOYAGE_TIMEOUT)",
                scope="outage",
                provider="voyage",
            ) from None
        except (OSError, aiohttp.ClientError) as exc:
            raise TransientFailure(
                "connection",
                f"could not reach Voyage ({type(exc).__name__})",
                scope="outage",
                provider="voyage",
            ) from None

        embeddings = result.embeddings or []
        if len(embeddings) != 1:
            raise TransientFailure(
                "bad_response", f"Voyage returned {len(embeddings)} embeddings for one text"
            )
        vector = [float(value) for value in embeddings[0]]
        expected = dimensions or EMBEDDING_DIMENSIONS
        if len(vector) != expected:
            named = "VOYAGE_MODEL" if model == self._model else "Voyage model"
            raise PermanentFailure(
                "config",
                f"{named} {model!r} returned {len(vector)}-dimensional vectors; pointers.embedding "
                f"needs {expected} (change the model through `pgqueue-enricher embeddings switch`)",
            )
        return Embedding(vector=vector, model=model, total_tokens=int(result.total_tokens or 0))

    async def aclose(self) -> None:
        return None
