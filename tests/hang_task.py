"""The planted task whose run stalls once on one Ray node, so that a test can remove that node
while the run is mid-search (tests/test_ray_cluster.py). Found by name
(`hang_task:HangOnceTask`) in any worker that has tests/ on its path."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from synthetic import PlantedTask

STALL_S = 120.0  # the node is removed long before; a bound so that a broken test cannot hang


class HangOnceTask(PlantedTask):
    """PlantedTask, but at its `hang_at`-th loss, on the Ray node `hang_node` and unless the
    file `hang_marker` exists, it writes that file (its node id) and stalls: the test removes
    the node. Elsewhere, or once the marker exists, it is PlantedTask exactly."""

    name = "planted-hang"

    def __init__(self, hang_marker: str = "", hang_at: int = 0, hang_node: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hang_marker, self.hang_at, self.hang_node, self.calls = hang_marker, hang_at, hang_node, 0

    def loss(self, model: Any, batch: Any) -> Any:
        self.calls += 1
        if self.hang_marker and self.calls == self.hang_at and not Path(self.hang_marker).exists():
            import ray

            node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
            if node == self.hang_node:
                Path(self.hang_marker).write_text(f"{node}\n{os.getpid()}\n")
                time.sleep(STALL_S)
                os._exit(1)
        return super().loss(model, batch)
