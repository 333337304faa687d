"""Small synthetic tasks with a planted architecture, for testing search end to end on CPU.

The planted space reads two images x and y:

    m = choice(candidates, x)
    u1, u2, u3, u4 = y, x * y, sigmoid(y), y * y      (fixed, parameter-free features)
    e = dense([u1, u2, u3, u4], topk=2) -> conv_1x1
    out = m + e

and the target is made by a known network of the same shape: a fixed random `op` on x plus
a fixed random 1x1 conv of concat(u_i, u_j). A search that works picks `op` for m and
(u_i, u_j) for e. The features are linearly independent and mostly uncorrelated, so only
the planted pair fits the target exactly; u1 and u3 are the exception (sigmoid is nearly
linear near 0), so plant at most one of them. The features are nodes, not inputs, so the
derived architecture drops the unused ones and keeps its inputs.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasflow.ops.registry import OPS
from nasflow.space.schema import Space, choice, combine, dense, op
from nasflow.tasks.contract import Metric, Task

# A larger conv can be any smaller one (outer rings at zero), so a planted op is only
# identifiable from data as the largest of its kind among the candidates: conv_7x7 is left
# out so that conv_5x5 can be planted, and so on.
CANDIDATES = ["conv_1x1", "conv_3x3", "conv_5x5", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3"]
INPUTS = ["u1", "u2", "u3", "u4"]


def planted_space(channels: int = 4, candidates: list[str] = CANDIDATES, task: str | None = None) -> Space:
    return Space(name="planted", task=task, params={"C": channels}, inputs={"x": "C", "y": "C"}, nodes={
        "m": choice(candidates, "x"),
        "u1": op("identity", "y"),
        "u2": combine("mul", ["x", "y"]),
        "u3": op("sigmoid", "y"),
        "u4": combine("mul", ["y", "y"]),
        "e": dense(INPUTS, topk=2, op="conv_1x1", out="C"),
        "out": combine("add", ["m", "e"]),
    }, output="out")


def features(x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """u1..u4 of the planted space, computed as it computes them."""
    return {"u1": y, "u2": x * y, "u3": torch.sigmoid(y), "u4": y * y}


def _random_init(module: nn.Module, g: torch.Generator) -> nn.Module:
    """Weights ~ N(0, 1/fan_in), from `g` only, so the target does not move with the
    global RNG (and so with the supernet's initialisation)."""
    with torch.no_grad():
        for p in module.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
    return module.requires_grad_(False)


class Batches:
    """An endless, seeded batch stream whose RNG state can be checkpointed.

    With world_size W, rank r gets samples r, r + W, ... of each global batch: the global
    batch is drawn whole, so the ranks together see exactly what one process would.
    """

    def __init__(self, task: PlantedTask, split: str, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        self.task, self.batch_size, self.rank, self.world_size = task, batch_size, rank, world_size
        # Disjoint streams for train and valid: another seed per split.
        self.generator = torch.Generator().manual_seed(seed * 2 + (split == "valid"))

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> tuple[dict[str, Tensor], Tensor]:
        inputs, target = self.task.sample(self.batch_size, self.generator)
        if self.world_size == 1:
            return inputs, target
        share = slice(self.rank, None, self.world_size)
        return {k: v[share] for k, v in inputs.items()}, target[share]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


class PlantedTask(Task):
    """target = op(x) + conv_1x1(concat(edges)); MSE loss.

    `stateful=False` yields a plain generator (no state_dict): resume then replays it.
    `keep` is the fraction of pixels the loss reads (1: all, and no draw from the RNG, so a
    distributed run's mean over equal shares is exactly the single process's loss).
    """

    name = "planted"
    metrics = (Metric("mse", higher_is_better=False),)

    def __init__(self, op: str = "conv_5x5", edges: tuple[str, str] = ("u2", "u4"), channels: int = 4,
                 size: int = 10, seed: int = 1234, stateful: bool = True, keep: float = 0.9) -> None:
        g = torch.Generator().manual_seed(seed)
        self.channels, self.size, self.edges, self.stateful = channels, size, edges, stateful
        self.keep = keep
        self.op = _random_init(OPS.get(op).factory(channels, channels), g)
        self.mix = _random_init(nn.Conv2d(2 * channels, channels, 1, bias=False), g)

    def sample(self, n: int, g: torch.Generator) -> tuple[dict[str, Tensor], Tensor]:
        shape = (n, self.channels, self.size, self.size)
        inputs = {name: torch.randn(shape, generator=g) for name in ("x", "y")}
        u = features(inputs["x"], inputs["y"])
        with torch.no_grad():
            target = self.op(inputs["x"]) + self.mix(torch.cat([u[name] for name in self.edges], 1))
        return inputs, target

    def batches(self, split: str, batch_size: int, seed: int, *, rank: int = 0,
                world_size: int = 1) -> Iterator[Any]:
        stream = Batches(self, split, batch_size, seed, rank, world_size)
        return stream if self.stateful else (next(stream) for _ in iter(int, 1))

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, float]]:
        inputs, target = batch
        if self.keep >= 1:
            loss = F.mse_loss(model(**inputs), target)
            return loss, {"mse": float(loss.detach())}
        # MSE on a random 90% of the pixels, drawn from the global RNG: the loop must
        # checkpoint that RNG for a resumed run to draw the same pixels.
        keep = torch.rand(target.shape, device=target.device) < self.keep
        loss = F.mse_loss(model(**inputs)[keep], target[keep])
        return loss, {"mse": float(loss.detach())}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        inputs, target = self.sample(16, torch.Generator().manual_seed(99))
        with torch.no_grad():
            return {"mse": float(F.mse_loss(model(**inputs), target))}


class GlobalBatchTask(PlantedTask):
    """The planted task with a batches() that knows nothing of ranks: a distributed search
    must cut each rank's share from the global batch itself."""

    def batches(self, split: str, batch_size: int, seed: int) -> Iterator[Any]:  # type: ignore[override]
        return super().batches(split, batch_size, seed)


TASK_NAME = "planted-test"


def register_task() -> str:
    """Make the planted task findable by name (`task: planted-test`, `--task planted-test`)."""
    from nasflow.tasks.contract import TASKS
    from nasflow.tasks.contract import register_task as register

    if TASK_NAME not in TASKS:
        register(TASK_NAME)(PlantedTask)
    return TASK_NAME


def fast_config(**changes: Any):  # -> SearchConfig
    """A search config for tests: few steps, learning rates high enough to move in them."""
    from nasflow.runs.config import AdamConfig
    from nasflow.search.config import SearchConfig

    base: dict[str, Any] = dict(
        steps=100, warmup=20, batch_size=8, gamma=0.0, seed=0, device="cpu",
        weights_optim=AdamConfig(lr=1e-2), arch_optim=AdamConfig(lr=3e-2, betas=(0.5, 0.999)),
        snapshot_steps=[], log_every=10, checkpoint_every=50)
    return SearchConfig(**{**base, **changes})


def same_run(a: Any, b: Any, kind: Any = None) -> None:
    """Runs `a` and `b` ended alike: the same checkpoint tensors bit for bit, the same step and
    the same metrics lines (their speed aside). `kind`: the run directory class (a search's
    by default)."""
    from nasflow.search.run_dir import RunDir

    kind = kind or RunDir
    got, got_state = kind(a).load_checkpoint()
    want, want_state = kind(b).load_checkpoint()
    assert got.keys() == want.keys() and got_state["step"] == want_state["step"]
    for key in want:
        assert torch.equal(got[key], want[key]), (a, key)
    strip = [{k: v for k, v in json.loads(line).items() if k != "steps_per_s"}
             for line in (a / "metrics.jsonl").read_text().splitlines()]
    assert strip == [{k: v for k, v in json.loads(line).items() if k != "steps_per_s"}
                     for line in (b / "metrics.jsonl").read_text().splitlines()]


# A two-candidate space of the planted task as a file (its task named as `synthetic:PlantedTask`,
# so `nasflow search` finds it from the space alone): what the fuse-recording tests search.
LEVERS_SPACE = ("name: levers\ntask: synthetic:PlantedTask\nparams: {C: 4}\ninputs: {x: C, y: C}\n"
                "nodes:\n  m: {choice: [conv_1x1, conv_3x3], in: x}\n  out: {combine: add, in: [m, y]}\noutput: out\n")


def levers_folder(tmp_path: Path, monkeypatch: Any) -> Path:
    """`tmp_path` as the current folder, holding LEVERS_SPACE as space.yaml, with this module
    importable (the space's task is `synthetic:PlantedTask`)."""
    import sys

    monkeypatch.setattr(sys, "path", [*sys.path, str(Path(__file__).resolve().parent)])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(LEVERS_SPACE)
    return tmp_path
