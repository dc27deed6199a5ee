"""structlog set-up: JSON lines for production, console for people, never a secret.

Every event passes through `scrub` last, so a secret that slipped into an exception text
or an SDK message is replaced before anything is written; stdlib records of the dependencies
(asyncpg, httpx, the SDKs) are rendered by the same processors, so they are JSON lines too.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

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


# The stdlib loggers of this package's dependencies. In a host app only these are taken over
# (the host's own loggers stay the host's); the CLI, which owns its process, takes the root.
LIBRARY_LOGGERS = (
    "pgqueue_enricher", "asyncpg", "httpx", "httpcore", "google_genai", "google.genai",
    "google.auth", "voyageai", "voyage", "urllib3", "alembic", "sqlalchemy", "psycopg", "py.warnings",
)  # fmt: skip
# Chatty at INFO (one line per HTTP request): kept at WARNING whatever LOG_LEVEL says.
QUIET_LOGGERS = ("httpx", "httpcore", "google_genai", "voyage", "asyncio", "urllib3", "sqlalchemy")

Scope = Literal["process", "libraries"]


def _renderer(log_format: str) -> Any:
    if log_format == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


def stdlib_handler(log_format: str, level: int, stream: Any = None) -> logging.Handler:
    """A handler that renders stdlib records like our own events: one line, scrubbed, same format.

    asyncpg logs its pool warnings with a traceback and the SDKs log through stdlib logging;
    without this their lines would be multi-line plain text beside the JSON, and unscrubbed.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _scrub_event,
                _renderer(log_format),
            ],
        )
    )
    handler._pgqueue_enricher = True  # type: ignore[attr-defined]
    return handler


def _install(logger: logging.Logger, handler: logging.Handler) -> None:
    for old in [h for h in logger.handlers if getattr(h, "_pgqueue_enricher", False)]:
        logger.removeHandler(old)
    logger.addHandler(handler)


def configure_logging(
    log_format: str = "json", level: str = "INFO", stream: Any = None, *, scope: Scope = "process"
) -> None:
    """Our events and every dependency's stdlib records: one format, one line each, scrubbed.

    `scope="process"` (the CLI) puts the handler on the root logger and routes `warnings`
    through logging; `scope="libraries"` (a host app) only takes over LIBRARY_LOGGERS, which then
    stop propagating, so the host's own logging is left as the host set it up.
    """
    numeric = getattr(logging, level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub_event,
            _renderer(log_format),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = stdlib_handler(log_format, numeric, stream)
    if scope == "process":
        root = logging.getLogger()
        _install(root, handler)
        root.setLevel(numeric)
        logging.captureWarnings(True)
    else:
        for name in LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            _install(logger, handler)
            logger.propagate = False
            if logger.level == logging.NOTSET:  # a level the host chose stays
                logger.setLevel(numeric)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def get_logger(name: str = "pgqueue_enricher") -> Any:
    return structlog.get_logger(name)
