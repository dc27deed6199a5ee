"""A host app in miniature, run as a process by the tests: the worker as a task of its lifespan.

It does what the README tells a FastAPI host to do (create the task, watch it with a done
callback, stop it with an event on SIGTERM) and nothing about logging: whatever the process
prints comes from the package and its dependencies. One stdlib warning stands in for an SDK
that echoes its API key into a log message, which the scrubber must catch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from pgqueue_enricher import run_pass2_worker


def report_exit(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("pgqueue_enricher").error("worker task died", exc_info=task.exception())


async def lifespan() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(run_pass2_worker(stop_event=stop))
    task.add_done_callback(report_exit)
    logging.getLogger("google_genai").warning(
        "retrying request with key=%s after a timeout", os.environ["GEMINI_API_KEY"]
    )
    await task


if __name__ == "__main__":
    asyncio.run(lifespan())
