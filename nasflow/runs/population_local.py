"""A population's runs on this machine (`--executor local`): one after another here, or
`parallel` spawned processes at a time (one GPU each when the runs use GPUs, the cores shared
out), each outcome handed to the Plan as it ends. The runs are Jobs (runs/population.py);
train/population.py's retrainings run so.
"""
from __future__ import annotations

import multiprocessing
import os
import platform
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from nasflow.errors import NasflowError
from nasflow.runs.population import BoardReporter, Job, Plan, SeedOutcome

Progress = Callable[[dict[str, dict[str, Any]]], None]  # hears every run's state (step, total, stage, node)


def run_population_local(jobs: list[Job], plan: Plan, parallel: int | None, progress: Progress | None) -> None:
    """Run jobs[i] for i in plan.todo, `parallel` at a time (default 1: here, in order); each
    outcome to plan.finish()."""
    k = 1 if parallel is None else parallel
    if k < 1:
        raise NasflowError(f"--parallel must be at least 1, got {k}")
    if k == 1 or len(plan.todo) <= 1:
        _run_here(jobs, plan, progress)
    else:
        _run_processes(jobs, plan, min(k, len(plan.todo)), progress)


def _run_here(jobs: list[Job], plan: Plan, progress: Progress | None) -> None:
    board: dict[str, dict[str, Any]] = {}

    def post(name: str, info: dict[str, Any]) -> None:
        board[name] = {**board.get(name, {}), **info}
        if progress:
            progress(board)

    for i in list(plan.todo):
        job = jobs[i]
        outcome = job.fn(*job.args, reporter=BoardReporter(post, job.name, platform.node(), job.stage))
        plan.finish(i, outcome)
        if not outcome.finished and outcome.error is None:  # stopped by Ctrl-C: stop here
            break


def _init_worker(devices: Any, threads: int) -> None:
    """Each worker process takes one GPU (CUDA_VISIBLE_DEVICES, before CUDA starts) and `threads`
    cores, and ends with its parent (a killed population: its runs save and stop, not run on unseen)."""
    import torch

    from nasflow.runs.children import die_with_parent

    die_with_parent()

    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices.get()
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def _worker_run(job: Job, board: Any) -> SeedOutcome:
    def post(name: str, info: dict[str, Any]) -> None:
        board[name] = {**board.get(name, {}), **info}

    return job.fn(*job.args, reporter=BoardReporter(post, job.name, platform.node(), job.stage))


def _run_processes(jobs: list[Job], plan: Plan, k: int, progress: Progress | None) -> None:
    import torch

    ctx = multiprocessing.get_context("spawn")  # no fork: torch's threads and CUDA do not survive it
    devices = None
    if jobs[0].device != "cpu" and torch.cuda.is_available():
        devices = ctx.Queue()
        for i in range(k):
            devices.put(str(i % torch.cuda.device_count()))
    threads = max(1, (os.cpu_count() or 1) // k)
    with ctx.Manager() as manager, ProcessPoolExecutor(k, mp_context=ctx, initializer=_init_worker,
                                                       initargs=(devices, threads)) as pool:
        board = manager.dict()
        futures: dict[Future[SeedOutcome], int] = {pool.submit(_worker_run, jobs[i], board): i for i in plan.todo}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    plan.finish(futures[future], future.result())
                if progress:
                    progress(dict(board))
        except KeyboardInterrupt:
            # The running runs got the Ctrl-C too: they save a checkpoint and return.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
