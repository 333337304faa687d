"""Independent searches of one space with several seeds: one run directory per seed.

    OUT/seed-0/   OUT/seed-1/   ...   each a search run directory whose config has that seed

The DLSR paper reports its searched architecture over 6 searches with a 95% confidence
interval (Table X). The searches share nothing, so they run `parallel` at a time in separate
processes: one per GPU when there are GPUs (each search on its own GPU), else as many as the
CPU cores allow at CPU_CORES_PER_SEARCH cores each. With parallel=1 they run here, one after
another. A seed whose search fails is reported and the others go on.

That is the local executor. executor="ray" runs each search as a Ray task on a cluster
instead (search/ray_executor.py: resources per run, lost workers resumed from checkpoints).
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nasflow.search.config import SearchConfig
from nasflow.errors import NasflowError
from nasflow.runs.children import die_with_parent
from nasflow.runs.population import CPU_CORES_PER_SEARCH, SeedOutcome
from nasflow.search.population import _search_one
from nasflow.space.schema import Space

if TYPE_CHECKING:
    from nasflow.runs.population_ray import RayOptions

SEED_DIR = "seed-{seed}"


def seed_dir(out: str | Path, seed: int) -> Path:
    return Path(out) / SEED_DIR.format(seed=seed)


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' or '0-5' (both ends included) or a mix: '0-2,7' -> [0, 1, 2, 7]."""
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            lo, sep, hi = part.partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if sep and lo else [int(part)])
    except ValueError:
        raise NasflowError(f"--seeds '{text}' must be whole numbers separated by commas, e.g. 0,1,2 or 0-5") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise NasflowError(f"--seeds '{text}' must name each seed once")
    return seeds


def default_parallel(device: str = "auto") -> int:
    """One search per GPU when searching on GPUs; else one per CPU_CORES_PER_SEARCH cores."""
    if device != "cpu" and torch.cuda.is_available():
        return torch.cuda.device_count()
    return max(1, (os.cpu_count() or 1) // CPU_CORES_PER_SEARCH)


# --- worker processes ----------------------------------------------------------------------
_worker_device: str | None = None


def _init_worker(devices: Any, threads: int) -> None:
    """Each worker takes one device (a GPU) for all its searches and `threads` CPU threads."""
    global _worker_device
    die_with_parent()  # a killed `--seeds` parent: its searches save and stop, not run on unseen
    _worker_device = devices.get() if devices is not None else None
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def _worker_search(config: SearchConfig, out: str, space: Space | None, resume: bool) -> SeedOutcome:
    if _worker_device is not None:
        config = config.model_copy(update={"device": _worker_device})
    return _search_one(config, out, space, resume)


def run_seeds(config: SearchConfig, out: str | Path, seeds: list[int], *, space: Space | None = None,
              resume: bool = False, parallel: int | None = None, reporter: Callable[[int], Any] | None = None,
              on_done: Callable[[SeedOutcome], None] | None = None, executor: str = "local",
              ray: RayOptions | None = None) -> list[SeedOutcome]:
    """Search `seeds` (config.seed replaced by each) into OUT/seed-N; outcomes in seed order.

    `resume` continues each OUT/seed-N that holds a run (and starts the others); `reporter(seed)`
    makes a progress display for a search run here (parallel=1); `on_done` hears of each
    seed as it ends. executor="ray": each search a Ray task (`ray`: where and how), every
    started run continued, resume or not.
    """
    if not seeds:
        raise NasflowError("no seeds to search: give --seeds, e.g. --seeds 0,1,2")
    configs = [config.model_copy(update={"seed": s}) for s in seeds]
    return run_searches(configs, [seed_dir(out, s) for s in seeds], space=space, resume=resume,
                        parallel=parallel, reporter=reporter, on_done=on_done, executor=executor, ray=ray)


def run_searches(configs: list[SearchConfig], paths: list[Path], *, space: Space | None = None,
                 resume: bool = False, parallel: int | None = None, reporter: Callable[[int], Any] | None = None,
                 on_done: Callable[[SeedOutcome], None] | None = None, executor: str = "local",
                 ray: RayOptions | None = None) -> list[SeedOutcome]:
    """Independent searches, configs[i] into paths[i], `parallel` at a time as run_seeds
    does (which calls this); outcomes in the configs' order. Sweeps (search/sweep.py) too.
    executor="ray" hands them to search/ray_executor.py."""
    if not configs:
        raise NasflowError("no searches to run")
    from nasflow.runs.population_ray import check_executor
    from nasflow.search.ray_executor import run_searches_ray

    check_executor(executor)
    if executor == "ray":
        return run_searches_ray(configs, paths, space=space, parallel=parallel, options=ray, on_done=on_done)
    if ray is not None:
        raise NasflowError("Ray options (--ray-address, --cpus-per-run, ...) need --executor ray")
    k = default_parallel(configs[0].device) if parallel is None else parallel
    if k < 1:
        raise NasflowError(f"--parallel must be at least 1, got {k}")
    k = min(k, len(configs))
    config = configs[0]
    outcomes: list[SeedOutcome] = []
    if k == 1:
        for i, (c, path) in enumerate(zip(configs, paths)):
            outcome = _search_one(c, str(path), space, resume, reporter(c.seed) if reporter else None)
            outcome.index = i
            outcomes.append(outcome)
            if on_done:
                on_done(outcome)
            if not outcome.finished and outcome.error is None:  # stopped by Ctrl-C: stop here
                break
        return outcomes
    ctx = multiprocessing.get_context("spawn")  # no fork: torch's threads and CUDA do not survive it
    on_gpus = config.device != "cpu" and torch.cuda.is_available()
    devices = None
    if on_gpus:
        devices = ctx.Queue()
        for i in range(k):
            devices.put(f"cuda:{i % torch.cuda.device_count()}")
    threads = max(1, (os.cpu_count() or 1) // k)
    with ProcessPoolExecutor(k, mp_context=ctx, initializer=_init_worker, initargs=(devices, threads)) as pool:
        futures: dict[Future[SeedOutcome], int] = {
            pool.submit(_worker_search, c, str(path), space, resume): i for i, (c, path) in enumerate(zip(configs, paths))}
        try:
            for future in as_completed(futures):
                outcome = future.result()
                outcome.index = futures[future]
                outcomes.append(outcome)
                if on_done:
                    on_done(outcome)
        except KeyboardInterrupt:
            # The running searches got the Ctrl-C too: they save a checkpoint and return.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return sorted(outcomes, key=lambda o: o.index)
