"""HTML from templates: every value escaped, every string scrubbed of secrets, markdown inert.

Jinja2 with autoescape on for every template; `finalize` passes each printed string through
redact.scrub before it is escaped, so a key that reached a row (an SDK error quoting a
header) never reaches a page. Markdown is rendered by markdown-it-py with raw HTML off:
tags in a description come out as text, and links with javascript: or data: URLs are
dropped by its link validator.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup

from pgqueue_enricher.redact import scrub

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown(text: str | None) -> Markup:
    """Safe HTML of a description: the source is scrubbed, raw HTML is escaped by the renderer."""
    return Markup(_markdown.render(scrub(text or "")))  # noqa: S704 (html=False: the renderer escapes)


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return scrub(value)
    if value is None:
        return ""
    return value


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def stamp(value: datetime | None) -> str:
    if value is None:
        return "–"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def hour(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:00")


def number(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def usd(value: float | None) -> str:
    return "–" if value is None else f"${value:,.4f}"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def environment() -> jinja2.Environment:
    templates = resources.files("pgqueue_enricher.dashboard") / "templates"
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (templates / name).read_text(encoding="utf-8")),
        autoescape=True,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        markdown=markdown,
        duration=duration,
        stamp=stamp,
        hour=hour,
        number=number,
        usd=usd,
        pretty_json=pretty_json,
    )
    return env
