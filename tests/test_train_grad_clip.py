"""Retraining clips the gradient's L2 norm to TrainConfig.grad_clip before each step (DARTS'
retraining clips to 5; the classify paper preset says so), and leaves it alone at 0."""
from __future__ import annotations

import torch
from synthetic import PlantedTask

from nasflow.runs.checkpoint import load_checkpoint
from nasflow.space.schema import Space, combine, op
from nasflow.tasks.presets import preset_section
from nasflow.train.config import TrainConfig
from nasflow.train.loop import run_train
from nasflow.train.run_dir import TrainRunDir


def _arch() -> Space:
    return Space(name="convs", params={"C": 4}, inputs={"x": "C", "y": "C"},
                 nodes={"a": op("conv_3x3", "x"), "b": op("conv_1x1", "y"),
                        "out": combine("add", ["a", "b"])}, output="out")


def _weights_after_one_step(tmp_path, name: str, lr: float, clip: float) -> dict[str, torch.Tensor]:
    # Plain SGD (no momentum, no weight decay): one step moves the weights by -lr * grad.
    config = TrainConfig(steps=1, batch_size=8, optimizer="sgd", momentum=0.0, seed=0, device="cpu",
                         optim={"lr": lr, "weight_decay": 0.0}, validate_every=1, log_every=1,
                         checkpoint_every=1, grad_clip=clip)
    run_train(config, tmp_path / name, arch=_arch(), task=PlantedTask())
    state = load_checkpoint(TrainRunDir(tmp_path / name).checkpoint_path)[0]
    return {k: v.double() for k, v in state.items() if v.is_floating_point()}


def test_one_step_moves_the_weights_by_lr_times_the_clipped_norm(tmp_path):
    lr, clip = 0.1, 1e-3
    w1 = _weights_after_one_step(tmp_path, "lr", lr, 0.0)
    w2 = _weights_after_one_step(tmp_path, "2lr", 2 * lr, 0.0)
    clipped = _weights_after_one_step(tmp_path, "clip", lr, clip)
    start = {k: 2 * w1[k] - w2[k] for k in w1}  # the same initial weights, from the two steps

    def moved(w: dict[str, torch.Tensor]) -> float:
        return float(torch.sqrt(sum(((w[k] - start[k]) ** 2).sum() for k in start)))

    assert moved(w1) > 10 * lr * clip  # the gradient is well above the clip
    assert abs(moved(clipped) - lr * clip) < 1e-3 * lr * clip


def test_darts_paper_preset_clips_to_5_in_search_and_retraining():
    _, search = preset_section("classify", "paper", "search")
    _, train = preset_section("classify", "paper", "train")
    assert search["grad_clip"] == 5.0 and train["grad_clip"] == 5.0
