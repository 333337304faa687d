"""Durable writes: each replaced file is fsynced before its rename and its directory after,
for checkpoints, run text files and model directories."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from nasflow.runs import durable
from nasflow.runs.checkpoint import load_checkpoint, save_checkpoint
from nasflow.runs.files import write_text_atomic


@pytest.fixture
def events(monkeypatch) -> list[tuple]:
    """("fsync", inode, is_dir) and ("replace", src, dst) in the order they happen."""
    log: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        log.append(("fsync", st.st_ino, stat.S_ISDIR(st.st_mode)))
        real_fsync(fd)

    def replace(src, dst) -> None:
        log.append(("replace", Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(durable.os, "fsync", fsync)
    monkeypatch.setattr(durable.os, "replace", replace)
    return log


def _assert_durable(log: list[tuple], path: Path) -> None:
    """The file's data is synced before it is renamed onto `path`, its directory after."""
    file_ino, dir_ino = path.stat().st_ino, path.parent.stat().st_ino
    replaces = [i for i, e in enumerate(log) if e[0] == "replace" and e[2] == path]
    assert len(replaces) == 1, log
    r = replaces[0]
    assert log[r][1].parent == path.parent and log[r][1] != path  # a temporary name beside it
    assert ("fsync", file_ino, False) in log[:r], \
        f"{path.name}'s data was not fsynced before the rename: {log}"
    assert ("fsync", dir_ino, True) in log[r + 1:], \
        f"{path.parent} was not fsynced after the rename: {log}"


@pytest.mark.skipif(os.name == "nt", reason="directories cannot be fsynced on Windows")
def test_checkpoint_is_fsynced_around_the_rename(tmp_path, events):
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, {"w": torch.ones(3)}, {"step": 7})
    _assert_durable(events, path)
    assert load_checkpoint(path)[1]["step"] == 7
    events.clear()
    save_checkpoint(path, {"w": torch.zeros(3)}, {"step": 8})  # replacing an existing one
    _assert_durable(events, path)
    assert load_checkpoint(path)[1]["step"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]


@pytest.mark.skipif(os.name == "nt", reason="directories cannot be fsynced on Windows")
def test_text_files_are_fsynced_around_the_rename(tmp_path, events):
    path = tmp_path / "config.json"
    write_text_atomic(path, "{}\n")
    _assert_durable(events, path)
    assert path.read_text() == "{}\n"


@pytest.mark.skipif(os.name == "nt", reason="directories cannot be fsynced on Windows")
def test_model_directory_files_are_fsynced_around_the_rename(tmp_path, events):
    from nasflow.compile.supernet import compile_graph
    from nasflow.runs.modeldir import ARCH_FILE, META_FILE, WEIGHTS_FILE, load_model, save_model
    from nasflow.space.graph import build_graph
    from nasflow.space.schema import Space, op

    space = Space(name="tiny", inputs={"x": 2}, nodes={"c": op("conv_1x1", "x", out=2)}, output="c")
    save_model(tmp_path / "m", space, compile_graph(build_graph(space)).state_dict(), meta={"scale": 1})
    for name in (WEIGHTS_FILE, ARCH_FILE, META_FILE):
        _assert_durable(events, tmp_path / "m" / name)
    assert load_model(tmp_path / "m")[2] == {"scale": 1}
