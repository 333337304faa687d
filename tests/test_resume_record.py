"""Resume leaves the same record (issue 15): a run stopped by Ctrl-C in the middle of a
logging window and resumed writes a metrics.jsonl equal to an uninterrupted run's (steps/s
aside: it is a timing), because the partial window travels in the checkpoint."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from synthetic import PlantedTask, fast_config, planted_space

from nasflow.derive.genotype import Genotype, derive_space
from nasflow.runs.config import AdamConfig
from nasflow.runs.loop import LogWindow
from nasflow.search.loop import run_search
from nasflow.search.run_dir import RunDir
from nasflow.train.config import TrainConfig
from nasflow.train.loop import run_train
from nasflow.train.run_dir import TrainRunDir


class _CtrlC:
    """A reporter (search's or train's) that presses Ctrl-C at one step."""

    def __init__(self, at: int) -> None:
        self.at = at

    def start(self, *args: Any) -> None: ...

    def update(self, step: int, *args: Any) -> None:
        if step == self.at:
            os.kill(os.getpid(), signal.SIGINT)

    def stop(self) -> None: ...


def _records(path: Path) -> list[dict[str, Any]]:
    records = RunDir(path).read_metrics() if (path / "config.json").is_file() else []
    for r in records:
        r.pop("steps_per_s", None)  # a timing: the one field allowed to differ
    return records


def test_search_record_after_ctrl_c_resume_equals_uninterrupted(tmp_path):
    config = fast_config(steps=30, warmup=5, log_every=10, checkpoint_every=100)
    run_search(config, tmp_path / "a", space=planted_space(), task=PlantedTask())
    stopped = run_search(config, tmp_path / "b", space=planted_space(), task=PlantedTask(), reporter=_CtrlC(13))
    assert stopped.step == 13  # 3 steps into the window that ends at step 20
    run_search(config, tmp_path / "b", task=PlantedTask(), resume=True)
    a, b = _records(tmp_path / "a"), _records(tmp_path / "b")
    assert [r["step"] for r in a] == [0, 10, 20, 30]
    assert a == b


def test_train_record_after_ctrl_c_resume_equals_uninterrupted(tmp_path):
    arch = derive_space(planted_space(4), Genotype({"m": "conv_5x5"}, {"e": ["u2", "u4"]}), name="planted-arch")
    config = TrainConfig(steps=30, batch_size=8, optim=AdamConfig(lr=1e-2, weight_decay=0.0), lr_halve_every=1000,
                         seed=0, device="cpu", validate_every=15, log_every=10, checkpoint_every=100)
    run_train(config, tmp_path / "a", arch=arch, task=PlantedTask())
    stopped = run_train(config, tmp_path / "b", arch=arch, task=PlantedTask(), reporter=_CtrlC(13))
    assert stopped.step == 13
    run_train(config, tmp_path / "b", task=PlantedTask(), resume=True)
    a, b = (TrainRunDir(tmp_path / x).read_metrics() for x in "ab")
    for r in (*a, *b):
        r.pop("steps_per_s", None)
    assert [r["step"] for r in a if "losses" in r] == [10, 20, 30]
    assert a == b


def test_log_window_round_trips_its_sums_count_and_time():
    window = LogWindow()
    window.add({"loss": 1.5})
    window.add({"loss": 2.25, "other": 1.0})
    state = window.state_dict()
    again = LogWindow()
    again.load_state_dict(state)
    assert (again.sums, again.count) == ({"loss": 3.75, "other": 1.0}, 2)
    means, rate = again.take()
    assert means == {"loss": 1.875, "other": 0.5} and rate > 0 and again.count == 0 and again.sums == {}
