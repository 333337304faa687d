"""Distributed retraining on 2 gloo processes (CPU, 1 thread each) on the planted architecture.

One spawn of 2 processes runs every scenario in turn (starting processes is the slow part);
the parent then checks:
  - 2 ranks train to the weights one process reaches with the same global batch (DDP
    averages the gradients of the two halves), and validate once, on rank 0;
  - a 2-rank run stopped at a step and resumed on 2 ranks ends where an uninterrupted one
    does (the loss draws pixel masks from each rank's own RNG, which the checkpoint keeps).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from spawn_ranks import as_rank, spawn_ranks
from synthetic import PlantedTask
from test_train import planted_arch

from nasflow.runs.config import AdamConfig
from nasflow.runs.distributed import cleanup, setup
from nasflow.runs.modeldir import load_model
from nasflow.train.loop import run_train
from nasflow.train.config import TrainConfig
from nasflow.train.run_dir import TrainRunDir

WORLD = 2
STEPS, STOP = 10, 6


def config(**changes: Any) -> TrainConfig:
    return TrainConfig(**{"steps": STEPS, "batch_size": 8, "optim": AdamConfig(lr=1e-2, weight_decay=0.0),
                          "lr_halve_every": 4, "seed": 0, "device": "cpu", "validate_every": 5,
                          "log_every": 5, "checkpoint_every": 4, **changes})



def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return TrainRunDir(run_dir).load_checkpoint()[0]


def _worker(rank: int, port: int, tmp: str) -> None:
    as_rank(rank, port, WORLD)
    runs = os.path.join(tmp, "runs")
    ctx = setup("cpu")
    try:
        full = run_train(config(), f"{runs}/full", arch=planted_arch(), task=PlantedTask(keep=1.0), ctx=ctx)
        run_train(config(), f"{runs}/straight", arch=planted_arch(), task=PlantedTask(), ctx=ctx)
        stopped = run_train(config(), f"{runs}/resumed", arch=planted_arch(), task=PlantedTask(), ctx=ctx,
                            stop_at=STOP)
        resumed = run_train(config(), f"{runs}/resumed", task=PlantedTask(), ctx=ctx, resume=True)
        out = {"full_valid": full.valid, "stopped": [stopped.step, stopped.finished],
               "resumed": [resumed.step, resumed.finished]}
    finally:
        cleanup(ctx)
    Path(tmp, f"rank{rank}.json").write_text(json.dumps(out))


@pytest.fixture(scope="module")
def dist_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("dist-train")
    return tmp, spawn_ranks(_worker, tmp, WORLD)


def test_two_ranks_train_as_one_process_with_the_same_global_batch(dist_runs, tmp_path):
    tmp, ranks = dist_runs
    single = run_train(config(), tmp_path / "single", arch=planted_arch(), task=PlantedTask(keep=1.0))
    got, want = weights(tmp / "runs" / "full"), weights(single.run_dir)
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)
    start = TrainRunDir(single.run_dir).read_metrics()
    assert start[0]["losses"]["train/loss"] > start[-2]["losses"]["train/loss"]  # it did train
    # one validation per validate_every, by rank 0, handed to every rank
    records = TrainRunDir(tmp / "runs" / "full").read_metrics()
    assert [r["step"] for r in records if "valid" in r] == [5, 10]
    assert ranks[0]["full_valid"] == ranks[1]["full_valid"]
    assert ranks[0]["full_valid"]["mse"] == pytest.approx(single.valid["mse"], rel=1e-4)
    # the logged losses are the mean over ranks: the single process's
    for a, b in zip([r for r in records if "losses" in r], [r for r in start if "losses" in r]):
        assert a["losses"] == pytest.approx(b["losses"], rel=1e-4)
    model, _, meta = load_model(tmp / "runs" / "full" / "model")
    assert meta["steps"] == STEPS


def test_resumed_distributed_training_continues_to_the_same_result(dist_runs):
    tmp, ranks = dist_runs
    for r in ranks:
        assert r["stopped"] == [STOP, False] and r["resumed"] == [STEPS, True]
    got, want = weights(tmp / "runs" / "resumed"), weights(tmp / "runs" / "straight")
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6, msg=key)
    _, state = TrainRunDir(tmp / "runs" / "resumed").load_checkpoint()
    assert len(state["ranks"]) == WORLD  # each rank's own RNG and data state
    a = TrainRunDir(tmp / "runs" / "resumed").read_metrics()
    b = TrainRunDir(tmp / "runs" / "straight").read_metrics()
    assert [r["step"] for r in a] == [r["step"] for r in b]
    va, vb = [r["valid"] for r in a if "valid" in r], [r["valid"] for r in b if "valid" in r]
    assert len(va) == len(vb) and all(x.keys() == y.keys() for x, y in zip(va, vb))
    for x, y in zip(va, vb):  # approx() takes flat containers only (pytest >= 9.2)
        assert x == pytest.approx(y)
