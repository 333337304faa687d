"""Checks every strategy of issue 13 passes: recovery of a planted op and edge pair over
seeds, and stop + resume equal to an uninterrupted run (arch, weights, strategy state)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from synthetic import CANDIDATES, PlantedTask, fast_config, planted_space

from nasflow.search.loop import run_search
from nasflow.search.run_dir import RunDir

# conv_5x5: neither the first candidate nor the cheapest (conv_1x1 is both), among 6.
PLANTED_OP, PLANTED_EDGES = "conv_5x5", ("u2", "u4")
assert CANDIDATES.index(PLANTED_OP) > 0 and len(CANDIDATES) >= 4


def recoveries(tmp: Path, strategy: str, seeds: range = range(5), channels: int = 4, **changes: Any) -> list[tuple[str, list[str]]]:
    """(derived op, derived edges) of one search per seed on the planted task."""
    found = []
    for seed in seeds:
        config = fast_config(strategy=strategy, seed=seed, checkpoint_every=1000, **changes)
        result = run_search(config, tmp / f"{strategy}-{seed}", space=planted_space(channels),
                            task=PlantedTask(op=PLANTED_OP, edges=PLANTED_EDGES, channels=channels))
        found.append((result.genotype.choices["m"], sorted(result.genotype.edges["e"])))
    return found


def recovered(found: list[tuple[str, list[str]]]) -> int:
    return sum(op == PLANTED_OP and edges == sorted(PLANTED_EDGES) for op, edges in found)


def final_state(run: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, state = RunDir(run).load_checkpoint()
    return tensors, state


def assert_resume_is_exact(tmp: Path, strategy: str, **changes: Any) -> dict[str, Any]:
    """A run stopped at step 7 and resumed ends exactly as an uninterrupted one: every tensor
    of the checkpoint and the strategy's state. Returns that state."""
    config = fast_config(strategy=strategy, steps=12, warmup=3, checkpoint_every=5, log_every=2, **changes)
    run_search(config, tmp / "a", space=planted_space(), task=PlantedTask())
    stopped = run_search(config, tmp / "b", space=planted_space(), task=PlantedTask(), stop_at=7)
    assert not stopped.finished
    assert run_search(config, tmp / "b", task=PlantedTask(), resume=True).finished
    (ta, sa), (tb, sb) = final_state(tmp / "a"), final_state(tmp / "b")
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    assert _plain(sa["strategy"]) == _plain(sb["strategy"])
    return sa["strategy"]


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.tolist()
    return x
