"""A population of runs (searches, retrainings) as Ray tasks: `--executor ray`.

Each run of the population is one Ray task with the resources it asks for (CPUs, a GPU, memory),
scheduled by Ray on any node of the cluster (`--ray-address auto|HOST:PORT`; without one, a
local Ray started here with this machine's cores). Every task writes its own run directory
under OUT, so OUT must be on storage every node sees (a shared filesystem: NFS, Lustre, ...);
this driver writes the population's record (OUT/population.json, runs/population.py) and
nothing else.

Fault tolerance is nasflow's own resume: a task whose worker or node dies (Ray raises a
system error, never the run's own exception) is submitted again by this driver, and the new
task continues the run from its last checkpoint as `--resume` does, bit for bit (checkpoints
carry the RNG and data-stream states); Ray's own task retries are off so that the driver
sees each loss, records the step the run restarted from and says so. Each run gets a worker
process of its own, which exits after it. Runs that finished are
skipped when the same command runs again; runs that had started continue. The results do
not depend on the executor: each task runs exactly what the local executor runs.

A run is a Job (runs/population.py): searches come from search/ray_executor.py, retrainings
from train/population.py. Ray is an optional extra (`pip install 'nasflow[ray]'`); this module
imports it only when a population runs on it.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nasflow.errors import NasflowError
from nasflow.runs.population import (CPU_CORES_PER_SEARCH, BoardReporter, Job, Plan, PopulationRecord, SeedOutcome,
                                     checkpoint_step)
from nasflow.runs.ray_tasks import check_memory, connect, require_ray, task_resources

EXECUTORS = ("local", "ray")
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
    memory_per_run: int | None = None  # bytes (ray_tasks.parse_memory); None: Ray reserves none
    max_restarts: int = MAX_RESTARTS
    progress: Callable[[dict[str, dict[str, Any]]], None] | None = None  # the runs' state, polled
    on_restart: Callable[[str, int, str], None] | None = None  # (run name, from step, why)


def check_executor(executor: str) -> None:
    if executor not in EXECUTORS:
        raise NasflowError(f"--executor must be one of {', '.join(EXECUTORS)}, not '{executor}'")


# --- the task, on a worker -----------------------------------------------------------------
def _ray_run(job: Job, board: Any, cwd: str) -> SeedOutcome:
    import ray
    import torch

    try:  # relative paths (OUT, the space file, data) mean what they mean to the driver
        os.chdir(cwd)
    except OSError as exc:
        return SeedOutcome(job.seed, job.path, error=(
            f"the driver's folder '{cwd}' is not on this node ({exc.strerror}): start the population "
            "from a folder every node sees at the same path"))
    context = ray.get_runtime_context()
    cpus = context.get_assigned_resources().get("CPU")
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))
    reporter = None
    if board is not None:
        reporter = BoardReporter(lambda name, info: board.update.remote(name, info), job.name,
                                 context.get_node_id()[:8], job.stage)
    # Always as --resume: a run this population started before (a lost worker, the population
    # stopped) continues from its checkpoint; one not started yet starts.
    return job.fn(*job.args, reporter=reporter)


class _Board:
    """The runs' progress, posted by the tasks and read by the driver."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}

    def update(self, name: str, info: dict[str, Any]) -> None:
        self.runs[name] = {**self.runs.get(name, {}), **info}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return self.runs


# --- the driver ----------------------------------------------------------------------------
def _resources(ray: Any, device: str, options: RayOptions) -> dict[str, Any]:
    total = ray.cluster_resources()
    gpus = options.gpus_per_run
    if gpus is None:
        gpus = 1.0 if device != "cpu" and total.get("GPU", 0) > 0 else 0.0
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
    check_memory(ray, options.memory_per_run)
    return task_resources(cpus, gpus, options.memory_per_run)


def run_population_ray(jobs: list[Job], record: PopulationRecord, *, parallel: int | None = None,
                       options: RayOptions | None = None,
                       on_done: Callable[[SeedOutcome], None] | None = None) -> list[SeedOutcome]:
    """Each job a Ray task, at most `parallel` at a time (default: as many as the cluster's
    resources hold); finished runs in `record` skipped, started ones continued, lost ones
    resubmitted. Outcomes in the jobs' order."""
    options = options or RayOptions()
    ray = require_ray()
    limit = len(jobs) if parallel is None else parallel
    if limit < 1:
        raise NasflowError(f"--parallel must be at least 1, got {limit}")
    plan = Plan(jobs, record, on_done, options.on_restart)
    if plan.todo:  # a finished population does not even join the cluster
        joined = connect(options.address)
        try:
            _drive(ray, jobs, plan, limit, options)
        finally:
            if joined:
                ray.shutdown()
    return plan.results()


def _drive(ray: Any, jobs: list[Job], plan: Plan, limit: int, options: RayOptions) -> None:
    """Run jobs[i] for i in plan.todo as Ray tasks, `limit` at a time; each outcome to plan.finish()."""
    resources = _resources(ray, jobs[0].device, options)
    # max_calls=1: a worker serves one run and exits, so no run inherits what another left in
    # its process (an import its Ctrl-C cut half way, memory and a GPU context it still holds).
    task = ray.remote(max_retries=0, max_calls=1)(_ray_run).options(**resources)
    board = ray.remote(num_cpus=0)(_Board).remote() if options.progress is not None else None
    lost = tuple(getattr(ray.exceptions, n) for n in _LOST if hasattr(ray.exceptions, n))
    tries = [0] * len(jobs)
    running: dict[Any, int] = {}
    todo = plan.todo
    try:
        while todo or running:
            while todo and len(running) < limit:
                i = todo.pop(0)
                running[task.remote(jobs[i], board, os.getcwd())] = i
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            if board is not None and options.progress is not None:
                options.progress(ray.get(board.snapshot.remote()))
            for ref in ready:
                i = running.pop(ref)
                job = jobs[i]
                try:
                    outcome = ray.get(ref)
                except lost as exc:  # the worker or its node went away: continue from the checkpoint
                    tries[i] += 1
                    step = checkpoint_step(job.path, job.kind) or 0
                    why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'worker lost'}"
                    if tries[i] > options.max_restarts:
                        plan.finish(i, SeedOutcome(job.seed, job.path, step, error=(
                            f"its worker was lost {tries[i]} times (last: {why}); its checkpoint at step {step} "
                            "is kept and the same command continues it")))
                    else:
                        plan.restart(i, step, why)
                        todo.insert(0, i)
                    continue
                except ray.exceptions.RayError as exc:  # e.g. unschedulable: the run's error, the others go on
                    outcome = SeedOutcome(job.seed, job.path, error=f"{type(exc).__name__}: {exc}")
                plan.finish(i, outcome)
    except KeyboardInterrupt:
        # Ray hands the running tasks a Ctrl-C: each saves a checkpoint after its step and returns.
        for ref in running:
            ray.cancel(ref)
        ray.wait(list(running), num_returns=len(running), timeout=60)
        raise
    if board is not None and options.progress is not None:
        options.progress(ray.get(board.snapshot.remote()))

