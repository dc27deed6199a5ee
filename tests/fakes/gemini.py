"""The Gemini fake: `POST /{v1,v1beta,v1alpha}/models/{model}:generateContent`, and the model
lookup `GET /{v1,v1beta,v1alpha}/models/{model}` (`doctor`), which finds `known_models`.

Accepts camelCase and snake_case bodies (the SDK sends both) and URL-safe base64 images;
answers like Gemini with code execution, thinking, usage metadata, and the errors of quotas,
outages, service tiers and bad keys.
"""

from __future__ import annotations

import base64
import collections
import json
import random
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from tests.fakes.base import Exchange, Fault, RecordedRequest, Route, ServiceFake, camel_keys

TITLE_PREFIX = "Pointer title:"

GEMINI_KINDS = frozenset(
    {
        "ok", "429", "429_retry_info", "429_no_retry_after", "408", "500", "503", "400", "401",
        "403", "timeout", "drop", "drop_mid_body", "safety", "prompt_blocked", "empty", "huge",
        "answer", "max_tokens", "404", "quota", "quota_vertex", "daily_quota", "401_key", "spend_cap",
    }
)  # fmt: skip
# Outage modes of the Gemini fake, and the fault each answers every call with.
OUTAGE_MODES = {
    "key_revoked": "401_key",
    "model_gone": "404",
    "down": "503",
    "timeout": "timeout",
    "spend_cap": "spend_cap",
}

# Models the model lookup finds; any other id answers 404 NOT_FOUND.
KNOWN_MODELS = frozenset({"gemini-3-flash-preview", "gemini-3.5-flash", "gemini-3.6-flash"})

_KEY_INVALID = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]


def urlsafe_decode(data: str) -> bytes:
    """Both URL-safe and standard base64, with or without padding."""
    data = data.strip()
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


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


def _error_json(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def _generation(parts: list[dict[str, Any]], finish_reason: str, model: str) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": finish_reason, "index": 0}
        ],
        "usageMetadata": _usage(),
        "modelVersion": model,
        "responseId": f"fake-{random.getrandbits(48):012x}",
    }


def _record(ex: Exchange, raw: Any) -> RecordedRequest:
    """The request with its title, texts and first image picked out of the parts."""
    record = RecordedRequest("gemini", "POST", ex.path, ex.headers_dict(), raw, camel_keys(raw))
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
    return record


class GeminiFake(ServiceFake):
    name = "gemini"
    kinds = GEMINI_KINDS

    def routes(self) -> list[Route]:
        return [
            ("POST", r"/(v1|v1beta|v1alpha)/models/(?P<model>[^/:]+):generateContent", self._generate),
            ("GET", r"/(?P<version>v1|v1beta|v1alpha)/models/(?P<model>[^/:]+)", self._lookup),
            ("POST", r"/_fake/gemini/(quota|daily_quota|outage)", self._control),
        ]

    def reset(self) -> None:
        super().reset()
        self.by_title: collections.Counter[str] = collections.Counter()
        self.ok_by_title: collections.Counter[str] = collections.Counter()  # successful answers
        self.answer: Callable[[str], str] = realistic_answer
        self.served_model: str | None = None  # the modelVersion answered (None: the requested id)
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
        # Model lookups (GET models/{model}): the models found, and how many lookups came
        # (they are not generateContent calls: `calls` does not count them).
        self.known_models: set[str] = set(KNOWN_MODELS)
        self.model_lookups = 0

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
        return self.tier_fault(record) or fault

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

    # -- the wire --

    def _control(self, ex: Exchange, match: re.Match[str], body: bytes) -> None:
        try:
            payload = json.loads(body or b"null")
            method = getattr(self, match[1])
            if isinstance(payload, dict):
                method(**payload)
            else:
                method(payload)
        except (TypeError, ValueError) as exc:
            ex.json(400, {"error": str(exc)})
            return
        ex.json(200, {"ok": True})

    def _generate(self, ex: Exchange, match: re.Match[str], body: bytes) -> None:
        try:
            raw = json.loads(body)
        except ValueError:
            ex.json(400, _error_json(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
            return
        record = _record(ex, raw)
        if self.key is not None and record.headers.get("x-goog-api-key") != self.key:
            message = "API key not valid. Please pass a valid API key."
            ex.json(400, _error_json(400, "INVALID_ARGUMENT", message, _KEY_INVALID))
            return
        model, title = match["model"], record.title or "(untitled)"
        ex.serve(self, record, lambda fault: self._reply(ex, fault, model, title))

    def _lookup(self, ex: Exchange, match: re.Match[str], body: bytes) -> None:
        """The model's description, as the real API answers a lookup. No key: 403; a wrong or
        revoked key: 400 API_KEY_INVALID; an unknown or retired model: 404 NOT_FOUND."""
        model = unquote(match["model"])
        with self._lock:
            self.model_lookups += 1
            known = model in self.known_models and self._outage != "model_gone"
            revoked = self._outage == "key_revoked"
        key = ex.headers_dict().get("x-goog-api-key")
        if key is None:
            ex.json(403, _error_json(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."))
        elif revoked or (self.key is not None and key != self.key):
            message = "API key not valid. Please pass a valid API key."
            ex.json(400, _error_json(400, "INVALID_ARGUMENT", message, _KEY_INVALID))
        elif not known:
            message = f"models/{model} is not found for API version {match['version']}."
            ex.json(404, _error_json(404, "NOT_FOUND", message))
        else:
            ex.json(
                200,
                {
                    "name": f"models/{model}",
                    "version": "001",
                    "displayName": model,
                    "inputTokenLimit": 1048576,
                    "outputTokenLimit": 65536,
                    "supportedGenerationMethods": ["generateContent", "countTokens", "batchGenerateContent"],
                },
            )

    def _reply(self, ex: Exchange, fault: Fault, model: str, title: str) -> None:
        kind = fault.kind
        if ex.common(fault):
            return
        # The model that answers: Google may serve a retired id with another model.
        model = self.served_model or model
        if kind == "429":
            details = None
            if fault.retry_delay:
                details = [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": fault.retry_delay}
                ]
            ex.json(
                429,
                _error_json(
                    429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", details
                ),
                {"Retry-After": fault.retry_after or "2"},
            )
        elif kind == "429_no_retry_after":
            ex.json(429, _error_json(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted."))
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
            ex.json(429, _error_json(429, "RESOURCE_EXHAUSTED", message, details))
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
            ex.json(429, _error_json(429, "RESOURCE_EXHAUSTED", message, details))
        elif kind == "spend_cap":
            message = (
                "Your project has exceeded its spend cap for the current 10-minute window. "
                "Please check your plan and billing details."
            )
            ex.json(429, _error_json(429, "RESOURCE_EXHAUSTED", message))
        elif kind == "quota_vertex":
            message = "Resource exhausted. Please try again later. Please refer to the quota documentation."
            ex.json(429, _error_json(429, "RESOURCE_EXHAUSTED", message))
        elif kind == "401_key":
            message = "API key expired. Please renew the API key."
            ex.json(400, _error_json(400, "INVALID_ARGUMENT", message, _KEY_INVALID))
        elif kind == "404":
            message = f"models/{model} is not found for API version v1beta, or is not supported for generateContent."
            ex.json(404, _error_json(404, "NOT_FOUND", message))
        elif kind in ("500", "503", "400", "401", "403"):
            status, message = {
                "500": ("INTERNAL", "An internal error has occurred. Please retry or report it."),
                "503": ("UNAVAILABLE", "The model is overloaded. Please try again later."),
                "400": ("INVALID_ARGUMENT", "Request contains an invalid argument."),
                "401": ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
                "403": ("PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
            }[kind]
            ex.json(int(kind), _error_json(int(kind), status, fault.text or message), ex.retry_after(fault))
        elif kind == "safety":
            candidate = {
                "finishReason": "SAFETY",
                "index": 0,
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
                ],
            }
            ex.json(200, {"candidates": [candidate], "usageMetadata": _usage(), "modelVersion": model})
        elif kind == "prompt_blocked":
            ex.json(
                200,
                {
                    "promptFeedback": {"blockReason": "SAFETY"},
                    "usageMetadata": _usage(),
                    "modelVersion": model,
                },
            )
        elif kind == "empty":
            parts = [{"text": "Nothing legible here.", "thought": True}, {"text": "  \n"}]
            ex.json(200, _generation(parts, "STOP", model))
        elif kind == "huge":
            filler = "".join(f'- NOTE {i}: 5/8" TYPE X GYPSUM BOARD, SEE S-101\n' for i in range(50_000))
            text = realistic_answer(title).replace("## Table Contents", filler + "\n## Table Contents", 1)
            ex.json(200, _generation([{"text": text}], "STOP", model))
        elif kind in ("answer", "max_tokens"):
            text = fault.text if fault.text is not None else realistic_answer(title)
            reason = "MAX_TOKENS" if kind == "max_tokens" else "STOP"
            ex.json(200, _generation([{"text": text}], reason, model))
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
                {"text": self.answer(title), "thoughtSignature": "ZmFrZS1zaWduYXR1cmU="},
            ]
            ex.json(200, _generation(parts, "STOP", model))
