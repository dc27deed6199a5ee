"""Where the database comes from, decided in one place.

Production always names its database (`DATABASE_URL`). The demo and the tests may fall
back, in this order, to a testcontainers `pgvector/pgvector:pg16` container when a Docker
engine answers, and then to the embedded PostgreSQL 16 + pgvector of the `pgserver`
package, which needs nothing but pip and starts in about a second, also as root.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgqueue_enricher.settings import plain_dsn

PGVECTOR_IMAGE = "pgvector/pgvector:pg16"


@dataclass
class DatabaseHandle:
    url: str
    source: str  # "DATABASE_URL", "container" or "embedded"
    data_dir: Path | None = None
    _owner: Any = None

    def stop(self) -> None:
        owner, self._owner = self._owner, None
        if owner is None:
            return
        if self.source == "container":
            owner.stop()
        elif self.source == "embedded":
            owner.cleanup()


def docker_engine_answers() -> bool:
    """True when a Docker engine responds; the docker CLI alone is not enough."""
    if os.environ.get("PGQUEUE_ENRICHER_NO_DOCKER"):
        return False
    try:
        import docker  # installed with testcontainers

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def start_container() -> DatabaseHandle:
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer(PGVECTOR_IMAGE, driver=None)
    container.start()
    return DatabaseHandle(url=plain_dsn(container.get_connection_url()), source="container", _owner=container)


def start_embedded(data_dir: Path, *, keep: bool) -> DatabaseHandle:
    """Start (or reuse) the embedded server whose data lives in `data_dir`.

    Stopping the handle stops the server; `keep=True` leaves its data for the next run (the
    demo), `keep=False` deletes it (the tests).
    """
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError(
            "the embedded database needs the `embedded` extra: pip install 'pgqueue-enricher[embedded]'"
        ) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); pgserver copes.
        warnings.simplefilter("ignore")
        server = pgserver.get_server(str(data_dir), cleanup_mode="stop" if keep else "delete")
    return DatabaseHandle(url=server.get_uri(), source="embedded", data_dir=data_dir, _owner=server)


def resolve_database(embedded_dir: Path, *, keep: bool, allow_container: bool = True) -> DatabaseHandle:
    url = os.environ.get("DATABASE_URL")
    if url:
        return DatabaseHandle(url=plain_dsn(url), source="DATABASE_URL")
    if allow_container and docker_engine_answers():
        return start_container()
    return start_embedded(embedded_dir, keep=keep)


def with_database_name(url: str, name: str) -> str:
    """The same server, another database (for per-test databases cloned from a template)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(database=name)
    return parsed.render_as_string(hide_password=False)
