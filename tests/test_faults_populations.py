"""A full disk under commands that write several runs (issue 25): `nasflow sweep`, `nasflow
train` of several architectures, `nasflow derive RUN --budget ...`. The one line names what
failed, what was kept and how to continue the rest; continuing so ends the job."""
from __future__ import annotations

import errno
import os
import shlex
from pathlib import Path
from typing import Any

import pytest
from faults_util import cli, one_line
from synthetic import planted_space, register_task

import nasflow.runs.checkpoint as checkpoint
import nasflow.runs.durable as durable

SMALL = ["--steps", "4", "--warmup", "1", "--batch", "8", "--device", "cpu", "-q"]


def full_below(monkeypatch: pytest.MonkeyPatch, folder: Path, only_checkpoints: bool = False) -> None:
    """The disk fills when a file is written below `folder`: a checkpoint in safetensors'
    writer, any other file (unless `only_checkpoints`: then a run there starts, and fails at
    its first checkpoint) in its write, an OSError naming no file as a real full disk's write
    or fsync gives. Folders are still made."""
    real_save, real_replace = checkpoint.save_file, durable.replace_durably

    def below(path: Any) -> bool:
        return Path(path).resolve().is_relative_to(folder.resolve())

    def save(tensors: Any, filename: str, metadata: Any = None) -> None:
        if below(filename):
            raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                               f'message: "{os.strerror(errno.ENOSPC)}" }})')
        real_save(tensors, filename, metadata=metadata)

    def replace(tmp: Path, path: Path) -> None:
        if below(path) and not only_checkpoints:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(tmp, path)

    monkeypatch.setattr(checkpoint, "save_file", save)
    monkeypatch.setattr(durable, "replace_durably", replace)


def _step(run: Path) -> int:
    return int(checkpoint.load_checkpoint(run / "checkpoint.safetensors")[1]["step"])


def test_a_sweep_on_a_full_disk_says_what_it_kept_and_how_to_continue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(planted_space(task=register_task()).to_yaml())
    out = tmp_path / "sweep"
    full_below(monkeypatch, out / "gamma-1", only_checkpoints=True)
    code, err = cli(["sweep", str(space), "--gamma", "0,1", *SMALL, "--parallel", "1", "--out", str(out)], capsys)
    again = f"nasflow sweep {space} --gamma 0,1 --resume --out {out}"
    one_line(code, err, "1 of 2 searches failed: gamma 1: no space left on the disk writing "
             f"'{out / 'gamma-1' / 'checkpoint.safetensors'}'", "Finished and kept: gamma 0",
             "a started run keeps its last checkpoint", f"Free some space, then continue the rest with: {again}")
    assert _step(out / "gamma-0") == 4 and not (out / "gamma-1" / "checkpoint.safetensors").exists()
    monkeypatch.undo()  # space returns: what the line says ends the sweep
    code, err = cli(shlex.split(again)[1:], capsys)
    assert code == 0, err
    assert _step(out / "gamma-0") == _step(out / "gamma-1") == 4


def test_a_population_training_on_a_full_disk_says_what_it_kept_and_how_to_continue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from test_train import planted_arch

    pop, name = tmp_path / "pop", register_task()
    for run in ("a", "b"):
        (pop / run / "derived").mkdir(parents=True)
        (pop / run / "derived" / "arch.yaml").write_text(planted_arch(task=name).to_yaml())
    full_below(monkeypatch, pop / "b" / "retrained", only_checkpoints=True)
    command = ["train", str(pop / "a" / "derived"), str(pop / "b" / "derived"), "--steps", "2", "--batch", "8",
               "--device", "cpu", "-q"]
    code, err = cli(command, capsys)
    one_line(code, err, "1 of 2 retrainings failed: b/retrained: no space left on the disk writing", "Finished and "
             "kept: a/retrained", "Free some space, then run the same command again: it continues the rest")
    assert (pop / "a" / "retrained" / "model" / "weights.safetensors").is_file()
    monkeypatch.undo()
    code, err = cli(command, capsys)
    assert code == 0, err
    assert _step(pop / "b" / "retrained") == 2 and (pop / "b" / "retrained" / "model").is_dir()


def test_derive_budgets_on_a_full_disk_says_what_it_kept_and_how_to_continue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from synthetic import fast_config
    from test_values import SPACE, WidthTask

    from nasflow.search.loop import run_search
    from nasflow.space.schema import Space
    from nasflow.tasks.contract import TASKS, register_task as register

    task = WidthTask()
    if task.name not in TASKS:
        register(task.name)(type(task))
    (tmp_path / "widths.yaml").write_text(SPACE)
    config = fast_config(strategy="sandwich", steps=4, warmup=1, batch_size=2, task=task.name,
                         strategy_options={"population": 2, "generations": 1, "parents": 1})
    run = tmp_path / "run"
    run_search(config, run, space=Space.from_yaml(tmp_path / "widths.yaml"), task=task)
    full_below(monkeypatch, run / "subnets" / "params-12k")
    command = ["derive", str(run), "--budget", "params=3k", "--budget", "params=12k"]
    code, err = cli(command, capsys)
    one_line(code, err, "the subnet under params=12k: no space left on the disk writing "
             f"'{run / 'subnets' / 'params-12k'}", f"Written and kept: params=3k ({run / 'subnets' / 'params-3k' / 'model'})", "Free some space, then run the same command again")
    assert (run / "subnets" / "params-3k" / "model" / "weights.safetensors").is_file()
    monkeypatch.undo()
    code, err = cli(command, capsys)
    assert code == 0, err
    assert (run / "subnets" / "params-12k" / "model" / "weights.safetensors").is_file()
