"""`nasflow plot` names the decision weights as the run's relaxation has them (issue 24 item
7): a sigmoid relaxation's run is drawn as sigmoid(alpha), its records saying so
(`weights_name`), while a softmax run, and an older run whose records do not say, stay
softmax(alpha)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from synthetic import PlantedTask, fast_config, planted_space

from nasflow.compile.relaxation import Relaxation
from nasflow.search.loop import run_search
from nasflow.strategies import STRATEGIES, Darts, register_strategy
from nasflow.viz.run_data import run_history
from nasflow.viz.run_plots import decisions_figure

pytest.importorskip("matplotlib")
NAME = "sigmoid-plot-test-strategy"


class Sigmoid(Relaxation):
    weights_name = "sigmoid"

    def __call__(self, arch: Any) -> dict[str, torch.Tensor]:
        return {label: torch.sigmoid(arch.logits(label)) for label in arch.decisions}

    decision_weights = __call__


@pytest.fixture
def sigmoid_strategy() -> Any:
    @register_strategy(NAME)
    class SigmoidDarts(Darts):
        def relaxation(self) -> Relaxation:
            return Sigmoid()

    yield NAME
    STRATEGIES.remove(NAME)


def _search(path: Path, strategy: str) -> Path:
    config = fast_config(strategy=strategy, steps=4, warmup=1, log_every=2, checkpoint_every=4, snapshot_steps=[])
    run_search(config, path, space=planted_space(), task=PlantedTask())
    return path


def _labels(run: Path) -> tuple[str, str]:
    fig = decisions_figure(run_history(run), "alpha")
    assert fig is not None
    return fig.axes[0].get_ylabel(), fig._suptitle.get_text()


def test_a_sigmoid_relaxations_run_is_drawn_as_sigmoid(tmp_path: Path, sigmoid_strategy: str) -> None:
    run = _search(tmp_path / "run", sigmoid_strategy)
    ylabel, title = _labels(run)
    assert ylabel == "sigmoid(alpha)" and "sigmoid(alpha), candidate ops per choice" in title


def test_softmax_runs_and_older_records_stay_softmax(tmp_path: Path) -> None:
    run = _search(tmp_path / "run", "darts")
    metrics = run / "metrics.jsonl"
    assert all("weights_name" not in json.loads(line) for line in metrics.read_text().splitlines())
    assert _labels(run)[0] == "softmax(alpha)"
