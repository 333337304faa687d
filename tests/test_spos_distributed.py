"""SPOS on 2 gloo processes: every rank draws the same single path per step from the
strategy's own generator and runs the same evolution, so the supernet, the evolution and the
chosen genotype equal one process's with the same global batch."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from spawn_ranks import as_rank, spawn_ranks
from synthetic import PlantedTask, fast_config, planted_space

from nasflow.runs.distributed import cleanup, setup
from nasflow.search.loop import run_search
from nasflow.search.run_dir import RunDir

WORLD = 2


def config():
    return fast_config(strategy="spos", steps=8, warmup=2, batch_size=8, log_every=4, checkpoint_every=4,
                       strategy_options={"population": 4, "generations": 2})


def _worker(rank: int, port: int, tmp: str) -> None:
    as_rank(rank, port, WORLD)
    ctx = setup("cpu")
    try:
        result = run_search(config(), f"{tmp}/runs/two", space=planted_space(), task=PlantedTask(keep=1.0), ctx=ctx)
        out = {"genotype": result.genotype.to_json(), "chosen": result.chosen,
               "notes": [n for n in result.notes if isinstance(n, str)]}
    finally:
        cleanup(ctx)
    Path(tmp, f"rank{rank}.json").write_text(json.dumps(out))


def test_two_ranks_draw_alike_and_equal_one_process(tmp_path):
    ranks = spawn_ranks(_worker, tmp_path, WORLD)
    assert ranks[0] == ranks[1] and ranks[0]["chosen"]  # the same evolution on both ranks
    single = run_search(config(), tmp_path / "one", space=planted_space(), task=PlantedTask(keep=1.0))
    two = tmp_path / "runs" / "two"
    got, state_two = RunDir(two).load_checkpoint()
    want, state = RunDir(single.run_dir).load_checkpoint()
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)
    # The same draws: the generators end in the same state.
    assert torch.equal(state_two["strategy"]["generator"], state["strategy"]["generator"])
    assert single.genotype.to_json() == ranks[0]["genotype"]
    one_evo = json.loads((single.run_dir / "spos" / "evolution.json").read_text())
    two_evo = json.loads((two / "spos" / "evolution.json").read_text())
    assert [s["genotype"] for s in one_evo["scored"]] == [s["genotype"] for s in two_evo["scored"]]
    for a, b in zip(one_evo["scored"], two_evo["scored"]):
        assert abs(a["mse"] - b["mse"]) <= 1e-4 * abs(b["mse"]) + 1e-6
