"""The one run loop (nasflow/runs/run_loop.py) that search and training share: the same
signals stop both (Ctrl-C and SIGTERM), the step reached is saved, and a run stopped in the
middle of a logging window and resumed writes the very records of one that never stopped
(the partial window travels in the checkpoint)."""
from __future__ import annotations

import os
import signal
from typing import Any

import pytest
import torch
from synthetic import PlantedTask, fast_config, planted_space
from test_train import fast, planted_arch

from nasflow.runs.checkpoint import load_checkpoint
from nasflow.runs.loop import StopFlag
from nasflow.search.loop import run_search
from nasflow.search.run_dir import RunDir
from nasflow.train.loop import run_train
from nasflow.train.run_dir import TrainRunDir

STEPS, STOP = 20, 12  # stopped 2 steps into the window that closes at 15


class _Signal:
    """A progress display that sends this process `signum` after one step (either loop's)."""

    def __init__(self, signum: signal.Signals, at: int) -> None:
        self.signum, self.at = signum, at

    def start(self, *args: Any) -> None: ...

    def update(self, step: int, logs: dict[str, float], news: Any) -> None:
        if step == self.at:
            os.kill(os.getpid(), self.signum)

    def stop(self) -> None: ...


def _search(run_dir, resume: bool = False, **kw: Any):
    config = fast_config(steps=STEPS, warmup=4, log_every=5, checkpoint_every=100, gamma=0.1)
    space = None if resume else planted_space()  # a resumed run reads its own
    return run_search(config, run_dir, space=space, task=PlantedTask(), resume=resume, **kw)


def _train(run_dir, resume: bool = False, **kw: Any):
    config = fast(steps=STEPS, log_every=5, checkpoint_every=100, validate_every=8, lr_halve_every=6)
    arch = None if resume else planted_arch()
    return run_train(config, run_dir, arch=arch, task=PlantedTask(), resume=resume, **kw)


LOOPS = {"search": (_search, RunDir), "train": (_train, TrainRunDir)}


def _records(run_files) -> list[dict[str, Any]]:
    """Every metrics record but its steps/s (a timing)."""
    return [{k: v for k, v in r.items() if k != "steps_per_s"} for r in run_files.read_metrics()]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("loop", list(LOOPS))
def test_a_signal_mid_window_saves_and_resume_writes_the_same_records(tmp_path, loop, signum):
    go, files = LOOPS[loop]
    go(tmp_path / "a")
    before = signal.getsignal(signum)
    stopped = go(tmp_path / "b", reporter=_Signal(signum, STOP))
    assert signal.getsignal(signum) is before  # handler restored
    assert not stopped.finished and stopped.step == STOP
    _, state = load_checkpoint(files(tmp_path / "b").checkpoint_path)
    assert state["step"] == STOP and state["log_window"]["count"] == STOP % 5  # steps 11 and 12
    assert max(r["step"] for r in files(tmp_path / "b").read_metrics()) <= 10  # nothing of 11-12 yet
    resumed = go(tmp_path / "b", resume=True)
    assert resumed.finished and resumed.step == STEPS
    a, b = _records(files(tmp_path / "a")), _records(files(tmp_path / "b"))
    assert [r["step"] for r in a] == [r["step"] for r in b]
    assert a == b  # the record at 15 averages steps 11-15 in both
    wa = load_checkpoint(files(tmp_path / "a").checkpoint_path)[0]
    wb = load_checkpoint(files(tmp_path / "b").checkpoint_path)[0]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resuming_without_the_window_starts_an_empty_one(tmp_path):
    """A checkpoint written before windows were kept resumes with an empty window: the next
    record averages only the steps after the resume, as it used to."""
    _train(tmp_path / "run", stop_at=STOP)
    run = TrainRunDir(tmp_path / "run")
    tensors, state = run.load_checkpoint()
    for local in [state, *state.get("ranks", [])]:
        local.pop("log_window", None)
    run.save_checkpoint(tensors, state)
    _train(tmp_path / "run", resume=True)
    steps = [r["step"] for r in run.read_metrics() if "losses" in r]
    assert steps == [5, 10, 15, 20]


def test_stop_flag_takes_ctrl_c_and_sigterm_and_puts_handlers_back():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for signum in before:
        with StopFlag() as stop:
            assert not stop.requested
            os.kill(os.getpid(), signum)
            assert stop.requested
            # the first signal was taken; the previous handler is back for a second one
            assert signal.getsignal(signum) is before[signum]
        assert {s: signal.getsignal(s) for s in before} == before
