"""`run_pass2_worker`: the worker as a coroutine, for the CLI and for a host app's lifespan alike.

A host app runs it as a task, and a task's exception stays unseen until someone awaits it:
a worker that died of a missing key left the app serving and silent until shutdown. So the
configuration is checked when `run_pass2_worker(...)` is *called*, before any coroutine or task
exists, and the host's `create_task(run_pass2_worker(...))` raises ConfigError on the spot. It
also installs the CLI's logging (LOG_FORMAT, LOG_LEVEL, the secret scrubber, dependency loggers
as one-line records) unless the host passes `install_logging=False` and brings its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from pgqueue_enricher.logs import configure_logging
from pgqueue_enricher.ops.metrics import serve_metrics
from pgqueue_enricher.queue.outages import load_runtime_sql
from pgqueue_enricher.queue.worker import Worker
from pgqueue_enricher.redact import register_settings_secrets
from pgqueue_enricher.settings import Settings, load_settings


def run_pass2_worker(
    settings: Settings | None = None,
    stop_event: asyncio.Event | None = None,
    *,
    install_logging: bool = True,
    **options: Any,
) -> Coroutine[Any, Any, Worker]:
    """Check the configuration now; return the coroutine that runs the worker until `stop_event`.

    Raises ConfigError (naming the variable) or WorkerFault (an incomplete installation) at
    the call. The coroutine returns the Worker once it stopped (with drain=True: once the
    queue is empty). `options` go to Worker (worker_id, drain, providers, on_progress).
    """
    settings = settings or load_settings()
    settings.require_database_url()
    settings.check_provider_config()
    register_settings_secrets(settings)
    load_runtime_sql()
    if install_logging:
        configure_logging(settings.log_format, settings.log_level, scope="libraries")
    worker = Worker(settings, stop_event=stop_event, **options)
    return _serve(worker, settings)


async def _serve(worker: Worker, settings: Settings) -> Worker:
    server = await serve_metrics(worker, settings.metrics_port) if settings.metrics_port else None
    try:
        await worker.run()
    finally:
        if server is not None:
            server.close()
            await server.wait_closed()
    return worker
