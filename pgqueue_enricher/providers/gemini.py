"""Describing a crop with Gemini (vision + code execution), one call per attempt.

The queue owns retries: the SDK's own retries are off, so a 429 comes back here at once
and becomes a TransientFailure carrying the server's requested delay, which the queue
turns into `enrichment_run_after`. The httpx transport is forced (the SDK prefers aiohttp
when it is importable), so timeouts and connection errors have one set of exception types.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import httpx
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from pgqueue_enricher.errors import EnrichmentFailure, PermanentFailure, TransientFailure
from pgqueue_enricher.providers import pricing as costs
from pgqueue_enricher.providers import tiers
from pgqueue_enricher.providers.answer import read_answer
from pgqueue_enricher.providers.checks import check_key
from pgqueue_enricher.providers.http_failures import (
    is_transient_status,
    parse_duration,
    retry_after_header,
    transient_status_failure,
)
from pgqueue_enricher.providers.imaging import sniff_image
from pgqueue_enricher.providers.prompt import PROMPT_VERSION, SYSTEM_INSTRUCTION, build_contents
from pgqueue_enricher.providers.quota import admission_scope
from pgqueue_enricher.providers.types import EnrichmentInput, EnrichmentOutput
from pgqueue_enricher.redact import register_settings_secrets
from pgqueue_enricher.settings import ConfigError, Settings

# Added to the HTTP timeout for the whole-call deadline: httpx's timeout applies to each
# read, so a server that trickles bytes could otherwise hold a slot for ever.
_DEADLINE_SLACK = 5.0
_MESSAGE_CHARS = 240


def _error_details(exc: genai_errors.APIError) -> list[dict[str, Any]]:
    body = exc.details
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    details = body.get("details") if isinstance(body, dict) else None
    return [item for item in details or [] if isinstance(item, dict)]


def retry_delay(exc: genai_errors.APIError) -> float | None:
    """The server's requested wait: RetryInfo.retryDelay (Gemini's own), else a Retry-After header."""
    for detail in _error_details(exc):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = parse_duration(detail.get("retryDelay"))
            if delay is not None:
                return delay
    return retry_after_header(getattr(exc.response, "headers", None))


def _is_key_error(exc: genai_errors.APIError) -> bool:
    for detail in _error_details(exc):
        if detail.get("reason") in ("API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED"):
            return True
    return "api key" in (exc.message or "").lower()


def classify_api_error(exc: genai_errors.APIError, model: str) -> EnrichmentFailure:
    code = exc.code or 0
    status = exc.status or ""
    label = f"{code} {status}".strip()
    message = " ".join(str(exc.message or "").split())[:_MESSAGE_CHARS] or "no message"
    if is_transient_status(code):
        sentence = (
            f"Gemini rate limit or quota reached ({label}): {message}"
            if code == 429
            else f"Gemini is unavailable ({label}): {message}"
        )
        failure = transient_status_failure("gemini", code, sentence, retry_after=retry_delay(exc))
        return admission_scope(failure, "gemini", _error_details(exc))  # provider admission
    if code in (401, 403) or (code == 400 and _is_key_error(exc)):
        return PermanentFailure(
            "auth",
            f"Gemini refused the API key ({label}): check GEMINI_API_KEY and that the Gemini API "
            f"is enabled for its project ({message})",
            scope="systemic",
            provider="gemini",
        )
    if code == 404:
        return PermanentFailure(
            "config",
            f"Gemini does not know the model {model!r} ({label}): check PASS2_MODEL ({message})",
            scope="systemic",
            provider="gemini",
        )
    return PermanentFailure("bad_request", f"Gemini rejected the request ({label}): {message}")


class GeminiDescriber:
    """One shared client for every pointer; `describe` is safe to call concurrently."""

    name = "gemini"
    # Stored in enrichment_metadata and compared before a checkpoint is reused (Providers).
    prompt_version = PROMPT_VERSION

    def __init__(self, settings: Settings) -> None:
        if settings.gemini_api_key is None:
            raise ConfigError("GEMINI_API_KEY is not set (or set ENRICHER_PROVIDER=local)")
        register_settings_secrets(settings)
        self._api_key = settings.gemini_api_key
        self._model = settings.pass2_model
        self._on_substitution = settings.pass2_on_model_substitution
        self._timeout = settings.pass2_gemini_timeout
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.pass2_gemini_timeout),
            limits=httpx.Limits(max_connections=max(10, 2 * settings.pass2_max_concurrent)),
        )
        self._client = genai.Client(
            api_key=settings.gemini_api_key.get_secret_value(),
            http_options=types.HttpOptions(
                base_url=settings.gemini_base_url or None,
                timeout=int(settings.pass2_gemini_timeout * 1000),
                httpx_async_client=self._http,
            ),
        )
        config: dict[str, Any] = {
            "system_instruction": SYSTEM_INSTRUCTION,
            "tools": [types.Tool(code_execution=types.ToolCodeExecution())],
            "thinking_config": types.ThinkingConfig(
                thinking_level=types.ThinkingLevel(settings.pass2_thinking_level.upper())
            ),
            "media_resolution": types.MediaResolution.MEDIA_RESOLUTION_HIGH,
        }
        if settings.pass2_temperature is not None:
            config["temperature"] = settings.pass2_temperature
        self._config = types.GenerateContentConfig(**config)
        # Service tier per lane and the cost ledger (tiers.py, pricing.py).
        self.tiers = tiers.TierPolicy.from_settings(settings)
        self._prices = costs.Prices.from_settings(settings)
        self._flex_config = self._config.model_copy(
            update={
                "service_tier": types.ServiceTier.FLEX,
                "http_options": types.HttpOptions(timeout=int(self.tiers.timeout_for(tiers.FLEX) * 1000)),
            }
        )

    async def open(self) -> None:
        """The key's shape only: a request would cost quota and need the network at start-up."""
        check_key("GEMINI_API_KEY", self._api_key)

    async def describe(self, item: EnrichmentInput) -> EnrichmentOutput:
        mime = sniff_image(item.cropped_image_bytes)
        started = time.monotonic()
        tier = self.tiers.tier_for(item.lane)
        try:
            response = await self._generate(item, mime, tier)
        except _TierRefused as refused:
            # The API refused the tier itself: the lane goes standard, and this call with it.
            self.tiers.fall_back(item.lane, tier, refused.reason)
            tier = tiers.STANDARD
            response = await self._generate(item, mime, tier)
        elapsed_ms = round((time.monotonic() - started) * 1000)
        output = read_answer(response, item)
        output.metadata["gemini_ms"] = elapsed_ms
        output.metadata.setdefault("model", self._model)
        output.metadata["service_tier"] = tier
        output.metadata["estimated_cost_usd"] = costs.estimate_cost_usd(
            output.metadata.get("usage") or {}, tier, self._prices
        )
        return dataclasses.replace(
            output, provider_problem=self._substitution(output.metadata.get("model_version"))
        )

    def _substitution(self, served: str | None) -> TransientFailure | None:
        """The pause a substituted model calls for: Google may serve a retired id with another
        model, billed at that model's price, and `modelVersion` is the only sign of it."""
        if not is_substitution(self._model, served) or self._on_substitution == "accept":
            return None
        return TransientFailure(
            "model_substituted",
            f"Gemini served {served!r} for the requested model {self._model!r}, billed at the "
            f"served model's price: set PASS2_MODEL to the model wanted, or "
            f"PASS2_ON_MODEL_SUBSTITUTION=accept, then restart the workers",
            scope="systemic",
            provider="gemini",
        )

    async def _generate(self, item: EnrichmentInput, mime: str, tier: str) -> types.GenerateContentResponse:
        timeout = self.tiers.timeout_for(tier)
        try:
            async with asyncio.timeout(timeout + _DEADLINE_SLACK):
                return await self._client.aio.models.generate_content(
                    model=self._model,
                    contents=build_contents(item, mime),
                    config=self._flex_config if tier == tiers.FLEX else self._config,
                )
        except genai_errors.APIError as exc:
            if tier == tiers.FLEX:
                _raise_for_flex(exc)
            raise classify_api_error(exc, self._model) from None
        except (TimeoutError, httpx.TimeoutException):
            setting = "PASS2_FLEX_TIMEOUT" if tier == tiers.FLEX else "PASS2_GEMINI_TIMEOUT"
            raise TransientFailure(
                "timeout",
                f"Gemini did not answer within {timeout:g}s ({setting})",
                scope="outage",
                provider="gemini",
            ) from None
        except (httpx.TransportError, OSError) as exc:
            raise TransientFailure(
                "connection",
                f"could not reach Gemini ({type(exc).__name__}: {_short(exc)})",
                scope="outage",
                provider="gemini",
            ) from None
        except ValueError as exc:  # a 200 whose body is not a GenerateContentResponse
            raise TransientFailure(
                "bad_response", f"Gemini sent a response that could not be read ({type(exc).__name__})"
            ) from None
        except Exception as exc:
            if _is_aiohttp_connection_error(exc):
                raise TransientFailure(
                    "connection", f"could not reach Gemini ({type(exc).__name__}: {_short(exc)})"
                ) from None
            raise

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        await self._http.aclose()


class _TierRefused(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _raise_for_flex(exc: genai_errors.APIError) -> None:
    """A Flex call's shed (429/503) is a wait; a 400 about the tier is a refusal of the tier."""
    code = exc.code or 0
    message = " ".join(str(exc.message or "").split())[:_MESSAGE_CHARS] or "no message"
    if code == 429 and (failure := classify_api_error(exc, "")).scope == "systemic":
        raise failure from None  # a spend cap or a spent budget is no shed: Flex cannot help
    if code in (429, 503):
        delay = retry_delay(exc)
        raise tiers.FlexShed(
            "flex_shed",
            f"Gemini Flex had no capacity ({code} {exc.status or ''}): {message}",
            retry_after=delay,
        ) from None
    if code == 400 and tiers.names_the_tier(message):
        raise _TierRefused(
            f"Gemini refused service_tier=flex ({code} {exc.status or ''}): {message}"
        ) from None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:_MESSAGE_CHARS] or "no detail"


def _is_aiohttp_connection_error(exc: BaseException) -> bool:
    """aiohttp is only used if someone changes the transport; its errors stay transient anyway."""
    try:
        import aiohttp
    except ImportError:
        return False
    return isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError)


def is_substitution(requested: str, served: str | None) -> bool:
    """Whether `served` is another model than `requested`: neither the id itself nor a dated
    snapshot of it (the id, `-`, a suffix). A response that names no model says nothing."""
    if not served:
        return False
    served = served.removeprefix("models/")
    requested = requested.removeprefix("models/")
    return served != requested and not served.startswith(requested + "-")
