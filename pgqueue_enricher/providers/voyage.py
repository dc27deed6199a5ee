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
from pgqueue_enricher.providers.storage import parse_retry_after
from pgqueue_enricher.providers.types import EMBEDDING_DIMENSIONS, Embedding
from pgqueue_enricher.redact import register_settings_secrets
from pgqueue_enricher.settings import ConfigError, Settings

_DEADLINE_SLACK = 5.0
_MESSAGE_CHARS = 240


def _message(exc: voyage_errors.VoyageError) -> str:
    text = exc.user_message if isinstance(exc.user_message, str) else ""
    return " ".join(text.split())[:_MESSAGE_CHARS] or "no message"


def classify_voyage_error(exc: voyage_errors.VoyageError) -> EnrichmentFailure:
    status = exc.http_status if isinstance(exc.http_status, int) else None
    label = f"HTTP {status}" if status else type(exc).__name__
    if isinstance(exc, voyage_errors.RateLimitError) or status == 429:
        delay = parse_retry_after((exc.headers or {}).get("Retry-After"))
        wait = f"; retry after {delay:g}s" if delay is not None else ""
        return TransientFailure(
            "rate_limited", f"Voyage rate limit reached ({label}): {_message(exc)}{wait}", retry_after=delay
        )
    if isinstance(exc, voyage_errors.Timeout):
        return TransientFailure("timeout", "Voyage did not answer in time (PASS2_VOYAGE_TIMEOUT)")
    if isinstance(exc, voyage_errors.APIConnectionError):
        return TransientFailure("connection", f"could not reach Voyage: {_message(exc)}")
    if isinstance(exc, voyage_errors.ServerError | voyage_errors.ServiceUnavailableError) or (
        status is not None and (status == 408 or status >= 500)
    ):
        return TransientFailure("voyage_unavailable", f"Voyage is unavailable ({label})")
    if isinstance(exc, voyage_errors.AuthenticationError) or status in (401, 403):
        return PermanentFailure(
            "auth", f"Voyage refused the API key ({label}): check VOYAGE_API_KEY ({_message(exc)})"
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
        try:
            async with asyncio.timeout(self._timeout + _DEADLINE_SLACK):
                result = await self._client.embed([text], model=self._model, input_type="document")
        except voyage_errors.VoyageError as exc:
            raise classify_voyage_error(exc) from None
        except TimeoutError:
            raise TransientFailure(
                "timeout", "Voyage did not answer in time (PASS2_VOYAGE_TIMEOUT)"
            ) from None
        except (OSError, aiohttp.ClientError) as exc:
            raise TransientFailure("connection", f"could not reach Voyage ({type(exc).__name__})") from None

        embeddings = result.embeddings or []
        if len(embeddings) != 1:
            raise TransientFailure(
                "bad_response", f"Voyage returned {len(embeddings)} embeddings for one text"
            )
        vector = [float(value) for value in embeddings[0]]
        if len(vector) != EMBEDDING_DIMENSIONS:
            raise PermanentFailure(
                "config",
                f"VOYAGE_MODEL {self._model!r} returned {len(vector)}-dimensional vectors; "
                f"pointers.embedding needs {EMBEDDING_DIMENSIONS} (use voyage-3 or voyage-3.5)",
            )
        return Embedding(vector=vector, model=self._model, total_tokens=int(result.total_tokens or 0))

    async def aclose(self) -> None:
        return None
