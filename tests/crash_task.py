"""The planted task whose process dies once, as a machine lost mid-search would: for tests of
populations whose workers are lost (tests/test_ray_executor.py). Found by name
(`crash_task:CrashOnceTask`) in any worker that has tests/ on its path."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from synthetic import PlantedTask


class CrashOnceTask(PlantedTask):
    """PlantedTask, but the process ends at once (os._exit: no checkpoint, no cleanup) at its
    `crash_at`-th loss unless the file `crash_marker` exists, which it writes first: the run
    dies once, and its retry, like an uninterrupted run given the same options, goes on."""

    name = "planted-crash"

    def __init__(self, crash_marker: str = "", crash_at: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crash_marker, self.crash_at, self.calls = crash_marker, crash_at, 0

    def loss(self, model: Any, batch: Any) -> Any:
        self.calls += 1
        if self.crash_marker and self.calls == self.crash_at and not Path(self.crash_marker).exists():
            Path(self.crash_marker).write_text(f"{os.getpid()}\n")
            os._exit(1)
        return super().loss(model, batch)
