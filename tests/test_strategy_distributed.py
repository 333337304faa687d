"""A sampling strategy on 2 gloo processes: every rank draws the same path from the
strategy's own generator, the unsampled candidates get no weight gradient (DDP is told so by
the relaxation's `sparse`), and the run equals one process with the same global batch."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from spawn_ranks import as_rank, spawn_ranks
from synthetic import PlantedTask, fast_config, planted_space

from nasflow.compile.relaxation import Relaxation, straight_through
from nasflow.runs.distributed import cleanup, setup
from nasflow.search.loop import run_search
from nasflow.search.run_dir import RunDir
from nasflow.strategies import Darts

WORLD = 2
NAME = f"{__name__}:SinglePath"


class _Path(Relaxation):
    sparse = True

    def __init__(self, strategy: SinglePath) -> None:
        self.strategy = strategy

    def __call__(self, arch):
        out = {}
        for label, d in arch.decisions.items():
            logits = arch.logits(label)
            k = 1 if d.kind == "alpha" else d.topk
            drawn = torch.randperm(len(d.options), generator=self.strategy.generator)[:k]
            out[label] = straight_through(torch.softmax(logits, -1), drawn)
        return out


class SinglePath(Darts):
    """A uniformly drawn single path (as SPOS), DARTS' arch gradient through it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generator = torch.Generator().manual_seed(self.config.seed)

    def mixed_op(self) -> str:
        return "plain"

    def relaxation(self) -> Relaxation:
        return _Path(self)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def config():
    return fast_config(strategy=NAME, steps=8, warmup=2, batch_size=8, log_every=4, checkpoint_every=4)


def _worker(rank: int, port: int, tmp: str) -> None:
    as_rank(rank, port, WORLD)
    ctx = setup("cpu")
    try:
        result = run_search(config(), f"{tmp}/runs/two", space=planted_space(), task=PlantedTask(keep=1.0), ctx=ctx)
        out = {"softmax": result.softmax}
    finally:
        cleanup(ctx)
    Path(tmp, f"rank{rank}.json").write_text(json.dumps(out))


def test_two_ranks_draw_alike_and_equal_one_process(tmp_path):
    ranks = spawn_ranks(_worker, tmp_path, WORLD)
    assert ranks[0]["softmax"] == ranks[1]["softmax"]  # the same arch on both ranks, exactly
    single = run_search(config(), tmp_path / "one", space=planted_space(), task=PlantedTask(keep=1.0))
    got, _ = RunDir(tmp_path / "runs" / "two").load_checkpoint()
    want, state = RunDir(single.run_dir).load_checkpoint()
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)
    # Some candidates were never drawn at some step: their weights sat out, yet DDP went on.
    assert single.softmax != RunDir(single.run_dir).read_metrics()[0]["weights"]
    assert "generator" in state["strategy"]
