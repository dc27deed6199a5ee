"""structlog set-up: JSON lines for production, console for people, never a secret.

Every event passes through `scrub` last, so a secret that slipped into an exception text
or an SDK message is replaced before anything is written.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from pgqueue_enricher.redact import scrub


def _scrub_event(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = scrub(value)
        elif isinstance(value, (dict, list, tuple)):
            event[key] = _scrub_nested(value)
    return event


def _scrub_nested(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_nested(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_nested(v) for v in value]
    return value


def configure_logging(log_format: str = "json", level: str = "INFO", stream: Any = None) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries log through stdlib logging; keep their noise out and their secrets scrubbed.
    for name in ("httpx", "httpcore", "google_genai", "asyncio"):
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str = "pgqueue_enricher") -> Any:
    return structlog.get_logger(name)
