"""The Voyage fake: `POST /v1/embeddings`, deterministic unit vectors per text (float lists
or base64 little-endian float32, as `encoding_format` asks)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import struct
from typing import Any

from tests.fakes.base import Exchange, Fault, RecordedRequest, Route, ServiceFake, camel_keys

EMBEDDING_DIMENSIONS = 1024

VOYAGE_KINDS = frozenset(
    {
        "ok", "429", "429_no_retry_after", "408", "500", "503", "400", "401", "403", "timeout",
        "drop", "drop_mid_body", "dims", "garbled",
    }
)  # fmt: skip


def fake_vector(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """Deterministic unit vector for a text (same text, same vector, across processes)."""
    rng = random.Random(hashlib.sha256(text.encode("utf-8")).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class VoyageFake(ServiceFake):
    name = "voyage"
    kinds = VOYAGE_KINDS

    def routes(self) -> list[Route]:
        return [("POST", r"/v1/embeddings", self._embed)]

    def reset(self) -> None:
        super().reset()
        self.dimensions = EMBEDDING_DIMENSIONS

    def _embed(self, ex: Exchange, match: re.Match[str], body: bytes) -> None:
        try:
            raw = json.loads(body)
        except ValueError:
            ex.json(400, {"detail": "Request body is not valid JSON."})
            return
        record = RecordedRequest("voyage", "POST", ex.path, ex.headers_dict(), raw, camel_keys(raw))
        if self.key is not None and record.headers.get("authorization") != f"Bearer {self.key}":
            ex.json(401, {"detail": "Provided API key is invalid."})
            return
        ex.serve(self, record, lambda fault: self._reply(ex, fault, raw))

    def _reply(self, ex: Exchange, fault: Fault, raw: dict[str, Any]) -> None:
        kind = fault.kind
        if ex.common(fault):
            return
        if kind == "429":
            ex.json(
                429,
                {"detail": "You have exceeded your TPM rate limit. Please retry after a short wait."},
                {"Retry-After": fault.retry_after or "3"},
            )
        elif kind == "429_no_retry_after":
            ex.json(429, {"detail": "You have exceeded your RPM rate limit."})
        elif kind in ("500", "503"):
            text = b"Internal Server Error" if kind == "500" else b"Service Unavailable"
            ex.send(int(kind), text, "text/plain", ex.retry_after(fault))
        elif kind == "400":
            ex.json(400, {"detail": "Value 'nonsense' supplied for argument 'model' is not valid."})
        elif kind == "401":
            ex.json(401, {"detail": "Provided API key is invalid."})
        elif kind == "403":
            ex.json(403, {"detail": "Access to this model is not allowed for this organization."})
        elif kind == "garbled":  # a 200 whose JSON a broken proxy cut short
            ex.send(200, b'{"object": "list", "data": [{"object": "embed', "application/json")
        else:
            texts = raw.get("input")
            texts = [texts] if isinstance(texts, str) else list(texts or [])
            requested = raw.get("output_dimension") if isinstance(raw.get("output_dimension"), int) else None
            dims = (fault.dims or 512) if kind == "dims" else (requested or self.dimensions)
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
            ex.json(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": raw.get("model"),
                    "usage": {"total_tokens": tokens},
                },
            )
