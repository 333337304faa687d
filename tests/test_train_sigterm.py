"""SIGTERM during a distributed training run (2 gloo processes, CPU, 1 thread each).

torchrun answers a Ctrl-C by sending every worker SIGTERM (SIGKILL 30 s later). Each rank
here gets SIGTERM from its own task in the middle of a step, as a worker under torchrun
would, at a step that is no checkpoint and in the middle of a logging window. The run must
finish that step, save it (every rank's RNG and data state, and the partial window), exit
cleanly with its handler put back, and a resumed run must end with exactly the weights and
metrics records of a run that was never stopped. No timing is involved: the signal comes
from inside the step it interrupts.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from spawn_ranks import as_rank, spawn_ranks
from synthetic import PlantedTask
from test_train import planted_arch

from nasflow.runs.config import AdamConfig
from nasflow.runs.distributed import cleanup, setup
from nasflow.train.config import TrainConfig
from nasflow.train.loop import run_train
from nasflow.train.run_dir import TrainRunDir

WORLD = 2
STEPS, STOP = 10, 6  # 6: no checkpoint (every 100), 2 steps into the window that closes at 8


def config() -> TrainConfig:
    return TrainConfig(steps=STEPS, batch_size=8, optim=AdamConfig(lr=1e-2, weight_decay=0.0), lr_halve_every=4,
                       seed=0, device="cpu", validate_every=5, log_every=4, checkpoint_every=100)


class SigtermAt(PlantedTask):
    """The planted task (pixel masks drawn from each rank's RNG) that sends its own process
    SIGTERM from inside the loss of step `at` (1-based)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def loss(self, model: Any, batch: Any) -> Any:
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().loss(model, batch)


def _worker(rank: int, port: int, tmp: str) -> None:
    as_rank(rank, port, WORLD)
    runs = Path(tmp, "runs")
    ctx = setup("cpu")
    try:
        run_train(config(), runs / "straight", arch=planted_arch(), task=PlantedTask(), ctx=ctx)
        before = signal.getsignal(signal.SIGTERM)
        stopped = run_train(config(), runs / "stopped", arch=planted_arch(), task=SigtermAt(STOP), ctx=ctx)
        restored = signal.getsignal(signal.SIGTERM) is before
        saved: dict[str, Any] = {}
        if ctx.is_main:  # the checkpoint the signal left, before the resumed run replaces it
            state = TrainRunDir(runs / "stopped").load_checkpoint()[1]
            saved = {"step": state["step"], "ranks": len(state["ranks"]),
                     "windows": [r["log_window"]["count"] for r in state["ranks"]]}
        resumed = run_train(config(), runs / "stopped", task=PlantedTask(), ctx=ctx, resume=True)
        out = {"stopped": [stopped.step, stopped.finished, stopped.model_dir is None], "restored": restored,
               "saved": saved, "resumed": [resumed.step, resumed.finished]}
    finally:
        cleanup(ctx)
    Path(tmp, f"rank{rank}.json").write_text(json.dumps(out))


@pytest.fixture(scope="module")
def sigterm_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("sigterm-train")
    return tmp, spawn_ranks(_worker, tmp, WORLD)


def test_sigterm_stops_every_rank_after_the_step_and_saves_it(sigterm_runs):
    _, ranks = sigterm_runs
    for r in ranks:
        assert r["stopped"] == [STOP, False, True]  # stopped after step 6, no final model
        assert r["restored"]  # the process's own SIGTERM handler is back
        assert r["resumed"] == [STEPS, True]
    assert ranks[0]["saved"] == {"step": STOP, "ranks": WORLD, "windows": [STOP % 4] * WORLD}


def test_resumed_after_sigterm_equals_an_uninterrupted_run(sigterm_runs):
    tmp, _ = sigterm_runs
    straight, resumed = TrainRunDir(tmp / "runs" / "straight"), TrainRunDir(tmp / "runs" / "stopped")
    want, got = straight.load_checkpoint()[0], resumed.load_checkpoint()[0]
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key
    strip = lambda records: [{k: v for k, v in r.items() if k != "steps_per_s"} for r in records]  # noqa: E731
    a, b = strip(straight.read_metrics()), strip(resumed.read_metrics())
    assert [r["step"] for r in a] == [4, 5, 8, 10, 10]  # losses at 4, 8, 10; validation at 5, 10
    assert a == b  # the window 5-8 spans the stop: averaged the same
