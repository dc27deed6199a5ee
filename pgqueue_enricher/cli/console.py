"""What a foreground command shows and obeys on a terminal: the progress bar and the stop signals.

Both `run` and `demo` drive the worker in the foreground; they share this so that neither
command module has to import the other.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys


class ProgressBar:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.total = 0

    def __call__(self, pending: int, processing: int) -> None:
        if not self.enabled:
            return
        left = pending + processing
        self.total = max(self.total, left)
        done = self.total - left
        width = 30
        filled = int(width * done / self.total) if self.total else width
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} done, {processing} in flight "
        )
        sys.stderr.flush()
        if left == 0:
            sys.stderr.write("\n")


def install_signal_handlers(stop: asyncio.Event) -> None:
    """First SIGTERM/SIGINT: graceful stop. Second: exit at once (leases expire and are rescued)."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
