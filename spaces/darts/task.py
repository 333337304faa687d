"""The image classification task ("classify"): CIFAR-10 (or the built-in set) for DARTS spaces.

    task = ClassificationTask(data="cifar-10-batches-py")      # --task-opt data=DIR
    x, y = next(task.batches("train", 64, seed=0))              # augmented, normalised
    task.loss(model, (x, y))                                    # cross-entropy
    task.evaluate(model)                                        # {"top1": %} on the test set

Search (`half=true`, the default) splits the training set as DARTS does: the first half
trains the weights ("train"), the second half the architecture ("valid"). Retraining
(`half=false`, the presets' train section) trains on all of it. Augmentation: random crop
with 4 pixels of zero padding and a horizontal flip; `cutout=16` adds DARTS' retraining
cutout. Without `data`, the built-in set (README.md beside this file) is used: nothing to download.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasflow.errors import NasflowError
from nasflow.tasks.contract import Metric, Task

from .data import builtin_set, load_cifar10
from .facts import FACTS

# CIFAR-10's per-channel mean and std (DARTS' normalisation), on 0..1 values
MEAN = torch.tensor([0.49139968, 0.48215827, 0.44653124]).view(1, 3, 1, 1)
STD = torch.tensor([0.24703233, 0.24348505, 0.26158768]).view(1, 3, 1, 1)

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The built-in set on a 2-core CPU: a search of the 8-cell network at C=4 (no cost
    # regularizer: gamma 0; the weights by DARTS' SGD, momentum 0.9, lr 0.025 cosine to 0.001:
    # top-1 69.5% after retraining, where Adam 3e-3 gave 66.3%), the derived cells retrained
    # at C=8 with the train loop's Adam.
    "quick": {
        "search": {"steps": 150, "warmup": 50, "batch_size": 16, "gamma": 0.0, "snapshot_steps": [],
                   "weights_optimizer": "sgd", "weights_momentum": 0.9, "weights_schedule": "cosine",
                   "weights_optim": {"lr": 0.025, "weight_decay": 3e-4}, "weights_lr_min": 0.001,
                   "arch_optim": {"lr": 3e-3, "betas": [0.5, 0.999]},
                   "log_every": 10, "checkpoint_every": 50, "overrides": {"C": 4},
                   "task_options": {"half": True}},
        "train": {"steps": 800, "batch_size": 32, "lr": 3e-3, "lr_halve_every": 400,
                  "validate_every": 400, "log_every": 50, "checkpoint_every": 400,
                  "overrides": {"C": 8}, "task_options": {"half": False}},
    },
    # DARTS on CIFAR-10 (Liu et al. 2019, section 3.1 and appendix A.1): the search at C=16 on
    # the half split, batch 64, 50 epochs (25,000 images: 391 steps each); retraining at C=36,
    # batch 96, 600 epochs (521 steps each) with SGD (momentum 0.9, weight decay 3e-4) from
    # lr 0.025 on a cosine schedule, cutout 16, drop-path 0.2 and the auxiliary head (weight
    # 0.4: the task's auxiliary_weight), gradients clipped to norm 5. The search's weights:
    # SGD (momentum 0.9, weight decay 3e-4) from lr 0.025 cosine to 0.001; its arch: Adam 3e-4, betas (0.5,
    # 0.999), weight decay 1e-3; the weights' gradient clipped to norm 5 (`--strategy darts
    # --strategy-opt arch_first=true` also takes train_search.py's order: arch step first).
    "paper": {
        "search": {"steps": 50 * 391, "warmup": 0, "batch_size": 64, "gamma": 0.0,
                   "weights_optimizer": "sgd", "weights_momentum": 0.9, "weights_schedule": "cosine",
                   "weights_optim": {"lr": 0.025, "weight_decay": 3e-4}, "weights_lr_min": 0.001,
                   "arch_optim": {"lr": 3e-4, "betas": [0.5, 0.999], "weight_decay": 1e-3},
                   "grad_clip": 5.0,
                   "overrides": {"C": 16}, "task_options": {"half": True}},
        "train": {"steps": 600 * 521, "batch_size": 96, "optimizer": "sgd", "lr": 0.025, "momentum": 0.9,
                  "weight_decay": 3e-4, "schedule": "cosine", "drop_path_prob": 0.2, "auxiliary": True,
                  "grad_clip": 5.0,
                  "validate_every": 10 * 521,
                  "checkpoint_every": 521, "overrides": {"C": 36},
                  "task_options": {"half": False, "cutout": 16}},
    },
}


def normalise(x: Tensor) -> Tensor:
    """uint8 N x 3 x H x W -> float, CIFAR-normalised."""
    return (x.float() / 255.0 - MEAN) / STD


def augment(x: Tensor, g: torch.Generator, cutout: int) -> Tensor:
    """Random crop (pad 4 with zeros), horizontal flip, then cutout of `cutout` px (0: none),
    all drawn from `g`; x: float N x 3 x 32 x 32."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=g)
    dx = torch.randint(0, 9, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    out[flip] = out[flip].flip(-1)
    if cutout > 0:  # DARTS: a square centred anywhere in the image, clipped at the border
        cy = torch.randint(0, h, (n,), generator=g)
        cx = torch.randint(0, w, (n,), generator=g)
        for i in range(n):
            y0, y1 = max(0, int(cy[i]) - cutout // 2), min(h, int(cy[i]) + cutout // 2)
            x0, x1 = max(0, int(cx[i]) - cutout // 2), min(w, int(cx[i]) + cutout // 2)
            out[i, :, y0:y1, x0:x1] = 0.0
    return out


class Batches:
    """Endless augmented batches drawn with replacement from a seeded generator; its state
    makes a resume exact. Rank r of W gets samples r, r + W, ... of each global batch."""

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, g: torch.Generator,
                 cutout: int, rank: int, world_size: int) -> None:
        self.images, self.labels, self.batch_size, self.g, self.cutout = images, labels, batch_size, g, cutout
        self.share = slice(rank, None, world_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, len(self.labels), (self.batch_size,), generator=self.g)
        x = augment(normalise(self.images[idx]), self.g, self.cutout)
        return x[self.share], self.labels[idx][self.share]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.g.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.g.set_state(state["generator"])


class ClassificationTask(Task):
    """Image classification, scored by top-1 accuracy on the test set.

    Options: data (a cifar-10-batches-py folder; none: the built-in set), half (search on
    DARTS' half split) [true], cutout (px, 0: off) [0], auxiliary_weight (of a model's
    auxiliary logits, when it returns (logits, aux)) [0.4], test_samples (0: all) [0].
    """

    name: ClassVar[str] = "classify"
    metrics = (Metric("top1", higher_is_better=True, doc="top-1 accuracy on the test set, %"),)
    best_metric = "top1"
    presets = PRESETS
    cost_size: ClassVar[tuple[int, int]] = FACTS.cost_size  # 8x8 (facts.py: torch-free)
    export_size: ClassVar[tuple[int, ...]] = (32, 32)
    check_size: ClassVar[tuple[int, ...]] = (32, 32)

    def __init__(self, data: str | None = None, half: bool = True, cutout: int = 0,
                 auxiliary_weight: float = 0.4, test_samples: int = 0) -> None:
        for option, value in (("cutout", cutout), ("test_samples", test_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise NasflowError(f"classify task option {option} must be an integer >= 0, got {value!r}")
        if not isinstance(half, bool):
            raise NasflowError(f"classify task option half must be true or false, got {half!r}")
        self.data, self.half, self.cutout = data, half, cutout
        self.aux_weight, self.test_samples = float(auxiliary_weight), test_samples
        self.train_x, self.train_y = self._load("train")
        self.test_x, self.test_y = self._load("test")
        if test_samples:
            self.test_x, self.test_y = self.test_x[:test_samples], self.test_y[:test_samples]

    @classmethod
    def dynamic_axes(cls) -> tuple[dict[int, str], dict[int, str]]:
        """Batch and image size: global pooling makes the classifier take any size."""
        return {0: "n", 2: "h", 3: "w"}, {0: "n"}

    def _load(self, split: str) -> tuple[Tensor, Tensor]:
        return builtin_set(split) if self.data is None else load_cifar10(self.data, split)

    def batches(self, split: str, batch_size: int, seed: int, *, rank: int = 0,
                world_size: int = 1) -> Batches:
        n = len(self.train_y)
        if self.half:  # DARTS' search: first half for the weights, second for the architecture
            part = slice(0, n // 2) if split == "train" else slice(n // 2, n)
        else:
            part = slice(0, n)
        g = torch.Generator().manual_seed(2 * seed + (split == "valid"))
        return Batches(self.train_x[part], self.train_y[part], batch_size, g, self.cutout, rank, world_size)

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
        x, y = batch
        out = model(x)
        if isinstance(out, (tuple, list)):  # (logits, auxiliary logits) from a net with an aux head
            logits, aux = out
            ce = F.cross_entropy(logits, y)
            total = ce + self.aux_weight * F.cross_entropy(aux, y)
        else:
            ce = total = F.cross_entropy(out, y)
        return total, {"ce": float(ce.detach())}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        correct = 0
        try:
            with torch.no_grad():
                for i in range(0, len(self.test_y), 256):
                    out = model(normalise(self.test_x[i:i + 256]))
                    logits = out[0] if isinstance(out, (tuple, list)) else out
                    correct += int((logits.argmax(1) == self.test_y[i:i + 256]).sum())
        finally:
            model.train(was_training)
        return {"top1": 100.0 * correct / max(1, len(self.test_y))}
