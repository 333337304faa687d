"""The planted task that refuses a worker process another run has used: for the test that each
run of a population on Ray gets a fresh worker (tests/test_ray_executor.py). Found by name
(`worker_task:FreshWorkerTask`) in any worker that has tests/ on its path."""
from __future__ import annotations

import os
from typing import Any

from synthetic import PlantedTask

_USED_BY: list[int] = []  # this process's runs so far (a module global: it lives as long as the worker)


class FreshWorkerTask(PlantedTask):
    """PlantedTask, but made a second time in one process it says so: a run that inherits a
    worker from another run inherits whatever that run left in it (a half-done import its
    Ctrl-C interrupted, memory it still holds)."""

    name = "planted-fresh-worker"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if _USED_BY:
            raise RuntimeError(f"worker process {os.getpid()} ran another run before this one")
        _USED_BY.append(os.getpid())
