"""Keeping secrets out of everything a person or a log pipeline can read.

Two layers: URLs lose their passwords before they are shown, and any text that leaves
the process (log lines, `enrichment_error`, `status`) passes through `scrub`, which
replaces every registered secret value, however it got there (an SDK error that
echoes a header, an exception that prints a DSN).
"""

from __future__ import annotations

import re
import threading
from urllib.parse import urlsplit, urlunsplit

_lock = threading.Lock()
_secrets: set[str] = set()

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I)
_KEY_PARAMS = re.compile(r"(?P<k>(?:key|api_key|apikey|password|token|secret)=)[^&\s]+", re.I)
_BEARER = re.compile(r"(?P<k>Bearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.I)


def register_secret(value: str | None) -> None:
    """Remember a secret value so that `scrub` removes it wherever it appears."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def scrub(text: str) -> str:
    if not text:
        return text
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _KEY_PARAMS.sub(lambda m: f"{m['k']}***", text)
    return _BEARER.sub(lambda m: f"{m['k']}***", text)


def redact_url(url: str) -> str:
    """The URL with its password replaced, for start-up logs and `status`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub(url)
    if parts.password is None:
        return scrub(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return scrub(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))


def register_settings_secrets(settings: object) -> None:
    """Register every secret a Settings object carries (keys and database passwords)."""
    for name in (
        "gemini_api_key",
        "voyage_api_key",
        "supabase_service_key",
        "dashboard_viewer_password",
        "dashboard_admin_password",
    ):
        value = getattr(settings, name, None)
        if value is not None:
            register_secret(value.get_secret_value())
    for name in ("database_url", "database_listen_url"):
        value = getattr(settings, name, None)
        if value is not None:
            try:
                password = urlsplit(value.get_secret_value()).password
            except ValueError:
                password = None
            register_secret(password)


def exception_reason(exc: BaseException, limit: int = 300) -> str:
    """An exception as one log field: its class and message, scrubbed and bounded."""
    return scrub(f"{type(exc).__name__}: {exc}")[:limit]
