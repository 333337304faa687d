"""--tensorboard: the event files hold the same series as metrics.jsonl (losses, decision
weights per candidate, validation, lr) plus a histogram per decision; without tensorboard
installed the run stops before it starts with one line saying how to install it."""
from __future__ import annotations

import sys

import pytest
from synthetic import PlantedTask, fast_config, planted_space, register_task
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nasflow.derive.genotype import Genotype, derive_space
from nasflow.errors import NasflowError
from nasflow.runs.files import RunFiles
from nasflow.search.loop import run_search
from nasflow.search.run_dir import RunDir
from nasflow.train.config import TrainConfig
from nasflow.train.loop import run_train


def events(run) -> EventAccumulator:
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def scalar(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_search_events_equal_the_metrics(tmp_path):
    config = fast_config(steps=30, warmup=10, log_every=5, gamma=0.1, snapshot_steps=[], tensorboard=True)
    run_search(config, tmp_path / "run", space=planted_space(), task=PlantedTask())
    records = RunDir(tmp_path / "run").read_metrics()
    acc = events(tmp_path / "run")
    for name in ("train/loss", "valid/loss", "reg/penalty"):
        want = [(r["step"], r["losses"][name]) for r in records if name in r["losses"]]
        got = scalar(acc, f"losses/{name}")
        assert [s for s, _ in got] == [s for s, _ in want] and len(want) >= 4
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)
    options = planted_space().nodes["m"].choice
    for j, option in enumerate(options):
        got = scalar(acc, f"weights/m/{option}")
        assert [v for _, v in got] == pytest.approx([r["weights"]["m"][j] for r in records], rel=1e-6)
    assert {"arch/m", "arch/e"} <= set(acc.Tags()["histograms"])
    assert len(acc.Histograms("arch/m")) == len(records)


def test_train_events_have_validation_and_lr(tmp_path):
    arch = derive_space(planted_space(), Genotype({"m": "conv_5x5"}, {"e": ["u2", "u4"]}), name="arch")
    config = TrainConfig(steps=20, batch_size=8, seed=0, device="cpu", validate_every=10, log_every=5,
                         checkpoint_every=10, tensorboard=True)
    run_train(config, tmp_path / "train", arch=arch, task=PlantedTask())
    records = RunFiles(tmp_path / "train").read_metrics()
    acc = events(tmp_path / "train")
    assert scalar(acc, "valid/mse") == [(r["step"], pytest.approx(r["valid"]["mse"], rel=1e-6))
                                        for r in records if "valid" in r]
    assert [s for s, _ in scalar(acc, "lr")] == [5, 10, 15, 20]


def test_no_tensorboard_files_unless_asked(tmp_path):
    run_search(fast_config(steps=4, warmup=1, log_every=2, snapshot_steps=[]), tmp_path / "run",
               space=planted_space(), task=PlantedTask())
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_missing_tensorboard_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(NasflowError, match=r"--tensorboard needs the tensorboard package.*pip install 'nasflow\[tensorboard\]'"):
        run_search(fast_config(steps=4, warmup=1, tensorboard=True), tmp_path / "run", space=planted_space(),
                   task=PlantedTask())


def test_cli_flag_and_resume_without_it(tmp_path):
    from nasflow.cli.main import run

    space = tmp_path / "planted.yaml"
    planted_space(task=register_task()).to_yaml(space)
    base = ["--steps", "6", "--warmup", "2", "--batch", "4", "--device", "cpu", "--log-every", "2",
            "--snapshot-steps", "none", "-q", "--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exc:
        run(["search", str(space), "--tensorboard", *base])
    assert exc.value.code == 0
    assert RunDir(tmp_path / "run").config().tensorboard and any((tmp_path / "run" / "tensorboard").iterdir())
    longer = [a if a != "6" else "8" for a in base]
    with pytest.raises(SystemExit) as exc:
        run(["search", "--resume", *longer])  # a resumed run keeps writing its events
    assert exc.value.code == 0
