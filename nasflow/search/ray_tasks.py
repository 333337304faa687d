"""Joining Ray, and many small evaluations that share one large object (SPOS's candidates).

Kept apart from ray_executor.py (populations of runs, which imports the search loop) so that
a strategy can use it without an import cycle. Ray is an optional extra, imported only here,
when something runs on it.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from nasflow.errors import NasflowError

INSTALL = "--executor ray needs Ray, an optional extra: pip install 'nasflow[ray]'"
RETRIES = 3  # Ray's retries of an evaluation whose worker was lost: evaluations are stateless


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise NasflowError(INSTALL) from None
    return ray


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join the cluster at `address`, or start a local Ray; reuse one already joined. True when
    this call joined (and the caller should leave it again)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:  # workers see what this process sees, as the local executor's spawned processes do
        env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        ray.init(num_cpus=num_cpus, runtime_env={"env_vars": env}, log_to_driver=False)
    return True


# --- many small evaluations sharing one large object (SPOS's candidates) -------------------
class RayMap:
    """`fn(shared, chunk) -> list` over chunks of items as Ray tasks, `shared` (a supernet, its
    task, fixed batches) put in Ray's object store once for every map. One task per CPU slot
    of the cluster (or per GPU when `gpus` > 0), results in the items' order. close() leaves
    a Ray this object joined."""

    def __init__(self, fn: Callable[[Any, list[Any]], list[Any]], shared: Any, address: str | None = None,
                 cpus: float = 1.0, gpus: float = 0.0) -> None:
        self.ray = require_ray()
        self.joined = connect(address)
        total = self.ray.cluster_resources()
        if cpus > total.get("CPU", 0) or gpus > total.get("GPU", 0):
            self.close()
            raise NasflowError(f"an evaluation task asks for {cpus:g} CPUs and {gpus:g} GPUs but the Ray cluster has "
                               f"{total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs")
        self.slots = max(1, int(total["GPU"] // gpus) if gpus else int(total.get("CPU", 1) // cpus))
        self.task = self.ray.remote(max_retries=RETRIES)(fn).options(num_cpus=cpus, num_gpus=gpus)
        self.shared = self.ray.put(shared)

    def map(self, items: list[Any]) -> list[Any]:
        k = min(len(items), self.slots)
        chunks = [items[j::k] for j in range(k)]
        try:
            parts = self.ray.get([self.task.remote(self.shared, chunk) for chunk in chunks])
        except self.ray.exceptions.RayTaskError as exc:  # the evaluation's own error, as it would be here
            if isinstance(getattr(exc, "cause", None), NasflowError):
                raise exc.cause from None
            raise
        out: list[Any] = [None] * len(items)
        for j, part in enumerate(parts):
            out[j::k] = part
        return out

    def close(self) -> None:
        if self.joined:
            self.ray.shutdown()
            self.joined = False
