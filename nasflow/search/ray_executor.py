"""A population of searches (seeds, sweep points) as Ray tasks: `--executor ray`.

Each run of the population is one Ray task with the resources it asks for (CPUs, a GPU),
scheduled by Ray on any node of the cluster (`--ray-address auto|HOST:PORT`; without one, a
local Ray started here with this machine's cores). Every task writes its own run directory
under OUT, so OUT must be on storage every node sees (a shared filesystem: NFS, Lustre, ...);
this driver writes OUT/population.json (search/population.py) and nothing else.

Fault tolerance is nasflow's own resume: a task whose worker or node dies (Ray raises a
system error, never the run's own exception) is submitted again by this driver, and the new
task continues the run from its last checkpoint as `--resume` does, bit for bit (checkpoints
carry the RNG and data-stream states); Ray's own task retries are off so that the driver
sees each loss, records the step the run restarted from and says so. Runs that finished are
skipped when the same command runs again; runs that had started continue. The results do
not depend on the executor: each task runs exactly what the local executor runs.

Ray is an optional extra (`pip install 'nasflow[ray]'`); this module imports it only when a
population runs on it.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasflow.errors import NasflowError
from nasflow.search.config import SearchConfig
from nasflow.search.population import CPU_CORES_PER_SEARCH, PopulationRecord, SeedOutcome, _search_one
from nasflow.space.schema import Space

EXECUTORS = ("local", "ray")
INSTALL = "--executor ray needs Ray, an optional extra: pip install 'nasflow[ray]'"
MAX_RESTARTS = 3  # restarts of one run after lost workers, before it counts as failed
# Ray's system errors that mean the worker or its node went away: the run is resubmitted.
_LOST = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError", "OwnerDiedError",
         "OutOfMemoryError", "ActorDiedError")


@dataclass
class RayOptions:
    """Where and how a population runs on Ray."""

    address: str | None = None  # None: start a local Ray here; 'auto' or HOST:PORT: a running cluster
    cpus_per_run: float | None = None  # default: a GPU run 1, else min(8, the largest node's CPUs)
    gpus_per_run: float | None = None  # default: 1 when the run's device may be a GPU and the cluster has one
    max_restarts: int = MAX_RESTARTS
    progress: Callable[[dict[str, dict[str, Any]]], None] | None = None  # the runs' state, polled
    on_restart: Callable[[str, int, str], None] | None = None  # (run name, from step, why)


def check_executor(executor: str) -> None:
    if executor not in EXECUTORS:
        raise NasflowError(f"--executor must be one of {', '.join(EXECUTORS)}, not '{executor}'")


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


def checkpoint_step(path: Path) -> int | None:
    """The step of the run's checkpoint at `path`, None without one."""
    from nasflow.search.run_dir import RunDir

    run = RunDir(path)
    if not run.has_checkpoint():
        return None
    return int(run.load_checkpoint()[1]["step"])


# --- the task, on a worker -----------------------------------------------------------------
class _BoardReporter:
    """A search's progress reporter that posts (throttled) to the driver's board actor."""

    def __init__(self, board: Any, name: str, node: str) -> None:
        self.board, self.name, self.node = board, name, node
        self.last = 0.0

    def _post(self, **info: Any) -> None:
        self.board.update.remote(self.name, {"node": self.node, "time": time.time(), **info})

    def start(self, step: int, total: int, warmup: int = 0) -> None:
        self.first, self.total, self.warmup, self.began = step, total, warmup, time.time()
        self._post(step=step, total=total, stage="warm-up" if step < warmup else "search", first=step,
                   began=self.began)

    def update(self, step: int, logs: dict[str, float], news: Any) -> None:
        now = time.time()
        if now - self.last < 0.5 and step < self.total:
            return
        self.last = now
        self._post(step=step, total=self.total, stage="warm-up" if step < self.warmup else "search",
                   first=self.first, began=self.began)

    def stop(self) -> None:
        pass


def _ray_search(config: SearchConfig, path: str, space: Space | None, name: str, board: Any,
                cwd: str) -> SeedOutcome:
    import ray
    import torch

    try:  # relative paths (OUT, the space file, data) mean what they mean to the driver
        os.chdir(cwd)
    except OSError as exc:
        return SeedOutcome(config.seed, Path(path), error=(
            f"the driver's folder '{cwd}' is not on this node ({exc.strerror}): start the population "
            "from a folder every node sees at the same path"))
    context = ray.get_runtime_context()
    cpus = context.get_assigned_resources().get("CPU")
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))
    reporter = _BoardReporter(board, name, context.get_node_id()[:8]) if board is not None else None
    # Always as --resume: a run this population started before (a lost worker, the population
    # stopped) continues from its checkpoint; one not started yet starts.
    return _search_one(config, path, space, True, reporter)


class _Board:
    """The runs' progress, posted by the tasks and read by the driver."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}

    def update(self, name: str, info: dict[str, Any]) -> None:
        self.runs[name] = {**self.runs.get(name, {}), **info}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return self.runs


# --- the driver ----------------------------------------------------------------------------
def _resources(ray: Any, config: SearchConfig, options: RayOptions) -> dict[str, float]:
    total = ray.cluster_resources()
    gpus = options.gpus_per_run
    if gpus is None:
        gpus = 1.0 if config.device != "cpu" and total.get("GPU", 0) > 0 else 0.0
    cpus = options.cpus_per_run
    if cpus is None:
        largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=1)
        cpus = 1.0 if gpus else float(max(1, min(CPU_CORES_PER_SEARCH, int(largest))))
    if cpus <= 0 or gpus < 0:
        raise NasflowError(f"--cpus-per-run must be > 0 and --gpus-per-run >= 0, got {cpus} and {gpus}")
    if cpus > total.get("CPU", 0) or gpus > total.get("GPU", 0):
        raise NasflowError(f"a run asks for {cpus:g} CPUs and {gpus:g} GPUs but the Ray cluster has "
                           f"{total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs; lower "
                           "--cpus-per-run / --gpus-per-run or add nodes")
    return {"num_cpus": cpus, "num_gpus": gpus}


def run_searches_ray(configs: list[SearchConfig], paths: list[Path], *, space: Space | None = None,
                     parallel: int | None = None, options: RayOptions | None = None,
                     on_done: Callable[[SeedOutcome], None] | None = None) -> list[SeedOutcome]:
    """configs[i] searched into paths[i] (all in one folder, OUT), each as a Ray task; at most
    `parallel` at a time (default: as many as the cluster's resources hold). Outcomes in the
    configs' order, as multiseed.run_searches gives them."""
    options = options or RayOptions()
    ray = require_ray()
    outs = {p.parent for p in paths}
    if len(outs) != 1:
        raise NasflowError(f"a population's runs share one folder, got {sorted(map(str, outs))}")
    limit = len(configs) if parallel is None else parallel
    if limit < 1:
        raise NasflowError(f"--parallel must be at least 1, got {limit}")
    record = PopulationRecord.load(outs.pop())
    outcomes: dict[int, SeedOutcome] = {}

    def finish(i: int, outcome: SeedOutcome) -> None:
        outcome.index, outcome.restarts = i, record.restarts(paths[i].name)
        if outcome.error is None and record.finished(paths[i].name) != outcome.finished:
            record.mark(paths[i].name, outcome.finished)
            record.save()
        outcomes[i] = outcome
        if on_done:
            on_done(outcome)

    def restart(i: int, step: int, why: str) -> None:
        record.restart(paths[i].name, step, why)
        record.save()
        if options.on_restart:
            options.on_restart(paths[i].name, step, why)

    todo: list[int] = []
    for i, (c, path) in enumerate(zip(configs, paths)):
        step = checkpoint_step(path) if (path / "config.json").is_file() else None
        if record.finished(path.name) and step is not None:  # done before: nothing to run, nothing written
            finish(i, SeedOutcome(c.seed, path, step, True))
            continue
        if step is not None:
            restart(i, step, "the population was started again")
        todo.append(i)
    if todo:  # a finished population does not even join the cluster
        joined = connect(options.address)
        try:
            _drive(ray, configs, paths, space, todo, limit, options, finish, restart)
        finally:
            if joined:
                ray.shutdown()
    return [outcomes[i] for i in sorted(outcomes)]


def _drive(ray: Any, configs: list[SearchConfig], paths: list[Path], space: Space | None, todo: list[int],
           limit: int, options: RayOptions, finish: Callable[[int, SeedOutcome], None],
           restart: Callable[[int, int, str], None]) -> None:
    """Run configs[i] for i in `todo` as Ray tasks, `limit` at a time; each outcome to finish()."""
    resources = _resources(ray, configs[0], options)
    task = ray.remote(max_retries=0)(_ray_search).options(**resources)
    board = ray.remote(num_cpus=0)(_Board).remote() if options.progress is not None else None
    lost = tuple(getattr(ray.exceptions, n) for n in _LOST if hasattr(ray.exceptions, n))
    tries = [0] * len(configs)
    running: dict[Any, int] = {}
    try:
        while todo or running:
            while todo and len(running) < limit:
                i = todo.pop(0)
                running[task.remote(configs[i], str(paths[i]), space, paths[i].name, board, os.getcwd())] = i
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            if board is not None and options.progress is not None:
                options.progress(ray.get(board.snapshot.remote()))
            for ref in ready:
                i = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except lost as exc:  # the worker or its node went away: continue from the checkpoint
                    tries[i] += 1
                    step = checkpoint_step(paths[i]) or 0
                    why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'worker lost'}"
                    if tries[i] > options.max_restarts:
                        finish(i, SeedOutcome(configs[i].seed, paths[i], step, error=(
                            f"its worker was lost {tries[i]} times (last: {why}); its checkpoint at step {step} "
                            "is kept and the same command continues it")))
                    else:
                        restart(i, step, why)
                        todo.insert(0, i)
                    continue
                except ray.exceptions.RayError as exc:  # e.g. unschedulable: the run's error, the others go on
                    outcome = SeedOutcome(configs[i].seed, paths[i], error=f"{type(exc).__name__}: {exc}")
                finish(i, outcome)
    except KeyboardInterrupt:
        # Ray hands the running tasks a Ctrl-C: each saves a checkpoint after its step and returns.
        for ref in running:
            ray.cancel(ref)
        ray.wait(list(running), num_returns=len(running), timeout=60)
        raise
    if board is not None and options.progress is not None:
        options.progress(ray.get(board.snapshot.remote()))
