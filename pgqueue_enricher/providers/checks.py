"""Shape checks of provider keys and URLs that need no request, for the providers' `open()`.

A key pasted with a line break, wrapped in the quotes of an env file or cut in two is
refused by the provider on every call; caught here, it stops the worker once at start-up
instead of failing the backlog row by row. The messages never show the key itself.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import SecretStr

from pgqueue_enricher.redact import redact_url
from pgqueue_enricher.settings import ConfigError


def key_problem(key: str) -> str | None:
    """Why `key` cannot be an API key, as a sentence that says how to fix it; None if it can."""
    if not key.strip():
        return "it is empty or only whitespace; set it to the key from the provider's console"
    if key != key.strip():
        return "it starts or ends with whitespace (a pasted line break?); set it again without it"
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
        return "it is wrapped in quotes (env files and systemd keep them); remove the quotes"
    if any(char.isspace() for char in key):
        return "it contains a space or line break; copy the key again in one piece"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        return "it contains a control character; copy the key again from the provider's console"
    if not key.isascii() or not key.isprintable():
        return "it contains a non-ASCII character; copy the key again from the provider's console"
    return None


def check_key(variable: str, key: SecretStr | None) -> None:
    if key is None:
        raise ConfigError(f"{variable} is not set")
    problem = key_problem(key.get_secret_value())
    if problem is not None:
        raise ConfigError(f"{variable} looks malformed: {problem}")


def check_http_url(variable: str, url: str | None, example: str) -> None:
    """An http(s) URL with a host, and no whitespace the HTTP client would choke on."""
    if not url:
        raise ConfigError(f"{variable} is not set")
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if (
        parts is None
        or not port_ok
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(char.isspace() for char in url)
    ):
        raise ConfigError(
            f"{variable} {redact_url(url)!r} is not an http(s) URL with a host: set it to {example}"
        )
