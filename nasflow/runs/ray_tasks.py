"""Joining Ray, and many small evaluations that share one large object (SPOS's candidates).

In runs/ so that every stage's populations (runs/population_ray.py: searches, retrainings) and
a strategy (SPOS) use it without importing each other. Ray is an optional extra, imported
only here, when something runs on it.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any

from nasflow.errors import NasflowError
from nasflow.limits import human_bytes

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


# Binary units, as Ray and the kernel count memory: 2G is 2 GiB.
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def parse_memory(text: str, flag: str = "--memory-per-run") -> int:
    """Bytes from '2G', '512M', '1.5GiB', '3000000000': what a Ray task asks for as `memory`."""
    match = _SIZE.fullmatch(text.strip())
    n = int(float(match.group(1)) * _UNITS[match.group(2).upper()]) if match else 0
    if n < 1:
        raise NasflowError(f"{flag} '{text}' is not an amount of memory: give bytes with a unit, e.g. 512M or 2G "
                           "(K, M, G, T: powers of 1024)")
    return n


def check_memory(ray: Any, memory: int | None, flag: str = "--memory-per-run") -> None:
    """One line when no node of the cluster has `memory` bytes for tasks (Ray would queue the
    task for ever)."""
    if memory is None:
        return
    largest = max((n["Resources"].get("memory", 0) for n in ray.nodes() if n.get("Alive")), default=0)
    if memory > largest:
        raise NasflowError(f"{flag} {human_bytes(memory)}: no node of the Ray cluster has that much memory for "
                           f"tasks (the largest has {human_bytes(largest)}); lower {flag} or add a larger node")


def task_resources(cpus: float, gpus: float, memory: int | None) -> dict[str, Any]:
    """A Ray task's .options(): its CPUs, GPUs and, when given, memory in bytes."""
    out: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus}
    if memory is not None:
        out["memory"] = memory
    return out


# --- many small evaluations sharing one large object (SPOS's candidates) -------------------
class RayMap:
    """`fn(shared, chunk) -> list` over chunks of items as Ray tasks, `shared` (a supernet, its
    task, fixed batches) put in Ray's object store once for every map. One task per CPU slot
    of the cluster (or per GPU when `gpus` > 0), each asking for `memory` bytes when given,
    results in the items' order. close() leaves a Ray this object joined."""

    def __init__(self, fn: Callable[[Any, list[Any]], list[Any]], shared: Any, address: str | None = None,
                 cpus: float = 1.0, gpus: float = 0.0, memory: int | None = None) -> None:
        self.ray = require_ray()
        self.joined = connect(address)
        total = self.ray.cluster_resources()
        if cpus > total.get("CPU", 0) or gpus > total.get("GPU", 0):
            self.close()
            raise NasflowError(f"an evaluation task asks for {cpus:g} CPUs and {gpus:g} GPUs but the Ray cluster has "
                               f"{total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs")
        try:
            check_memory(self.ray, memory)
        except NasflowError:
            self.close()
            raise
        self.slots = max(1, int(total["GPU"] // gpus) if gpus else int(total.get("CPU", 1) // cpus))
        self.task = self.ray.remote(max_retries=RETRIES)(fn).options(**task_resources(cpus, gpus, memory))
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
