"""The sampling strategies on 2 gloo processes: every rank draws the same samples from the
strategy's own generator, so the run equals one process with the same global batch."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from spawn_ranks import as_rank, spawn_ranks
from synthetic import PlantedTask, fast_config, planted_space

from nasflow.runs.distributed import cleanup, setup
from nasflow.search.loop import run_search
from nasflow.search.run_dir import RunDir

WORLD = 2
SAMPLING = ["gdas", "drnas"]


def config(strategy: str):
    return fast_config(strategy=strategy, steps=8, warmup=2, batch_size=8, log_every=4, checkpoint_every=4)


def _worker(rank: int, port: int, tmp: str) -> None:
    strategy = Path(tmp, "strategy").read_text()
    as_rank(rank, port, WORLD)
    ctx = setup("cpu")
    try:
        result = run_search(config(strategy), f"{tmp}/runs/two", space=planted_space(),
                            task=PlantedTask(keep=1.0), ctx=ctx)
        out = {"softmax": result.softmax}
    finally:
        cleanup(ctx)
    Path(tmp, f"rank{rank}.json").write_text(json.dumps(out))


@pytest.mark.parametrize("strategy", SAMPLING)
def test_two_ranks_draw_alike_and_equal_one_process(tmp_path, strategy):
    (tmp_path / "strategy").write_text(strategy)
    ranks = spawn_ranks(_worker, tmp_path, WORLD)
    assert ranks[0]["softmax"] == ranks[1]["softmax"]  # the same arch on both ranks, exactly
    single = run_search(config(strategy), tmp_path / "one", space=planted_space(), task=PlantedTask(keep=1.0))
    got, state_two = RunDir(tmp_path / "runs" / "two").load_checkpoint()
    want, state = RunDir(single.run_dir).load_checkpoint()
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)
    # The same draws: the generators end in the same state.
    assert torch.equal(state_two["strategy"]["generator"], state["strategy"]["generator"])
    assert single.softmax != RunDir(single.run_dir).read_metrics()[0]["weights"]
