"""pgqueue-enricher: a Postgres-native queue and worker that enriches Maestro pointers (Pass 2).

Host apps import `run_pass2_worker` (to run the worker inside their own process) and
`seed_default_experience` (to seed Experience files of existing projects).
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_pass2_worker", "seed_default_experience"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package (e.g. for the models) must not pull in the SDKs.
    if name == "run_pass2_worker":
        from pgqueue_enricher.daemon import run_pass2_worker

        return run_pass2_worker
    if name == "seed_default_experience":
        from pgqueue_enricher.experience import seed_default_experience

        return seed_default_experience
    raise AttributeError(name)
