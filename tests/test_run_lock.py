"""One writer per run directory (issue 25, nasflow/runs/lock.py): a second process gets one
line naming the holder's pid; the lock of a killed process is taken over, with a message."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from synthetic import PlantedTask, fast_config, planted_space, register_task

from nasflow.cli.main import run as cli_run
from nasflow.errors import NasflowWarning, RunError
from nasflow.runs.lock import LOCK, holder
from nasflow.search.loop import run_search

TESTS = Path(__file__).resolve().parent

# A search that stops in its first step until killed: a live writer of the run.
_HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import torch
    torch.set_num_threads(1)
    from synthetic import PlantedTask, fast_config, planted_space
    from nasflow.search.loop import run_search

    class Stuck(PlantedTask):
        def loss(self, model, batch):
            print("stepping", flush=True)
            time.sleep(600)

    run_search(fast_config(steps=4, warmup=1, checkpoint_every=2, log_every=1), {run!r},
               space=planted_space(), task=Stuck())
""")


def _config():  # -> SearchConfig
    return fast_config(steps=4, warmup=1, checkpoint_every=2, log_every=1)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Another process searching into tmp_path/run, in its first step."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER.format(tests=str(TESTS), run=str(run))],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "stepping", "the writer did not start"
        yield proc, run
    finally:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_naming_the_holder(writer: tuple[subprocess.Popen[str], Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    proc, run = writer
    assert holder(run) == proc.pid
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(RunError, match=rf"run '.*' is being written by another process \(pid {proc.pid}\); wait "
                                       rf"for it to end or stop it \(kill {proc.pid}\), or write to another --out"):
        run_search(_config(), run, task=PlantedTask(), resume=True)
    # The command line: a resume, and a new search given the same --out, each one line, exit 2.
    register_task()
    space = run.parent / "space.yaml"
    space.write_text(planted_space(task=register_task()).to_yaml())
    for args in (["search", "--resume", "--out", str(run), "-q"], ["search", str(space), "--out", str(run), "-q"]):
        with pytest.raises(SystemExit) as done:
            cli_run(args)
        err = capsys.readouterr().err
        assert done.value.code == 2 and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1 and f"pid {proc.pid}" in err, err
    assert sorted(p.name for p in run.iterdir()) == before  # nothing written by the refused ones
    assert holder(run) == proc.pid


def test_the_lock_of_a_killed_writer_is_taken_over(writer: tuple[subprocess.Popen[str], Path]) -> None:
    proc, run = writer
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert holder(run) == proc.pid  # the file is left; its lock went with the process
    with pytest.warns(NasflowWarning, match=rf"taking over the lock of process {proc.pid}, which is no longer "
                                            r"running \(it was killed; its last checkpoint is kept\)"):
        assert run_search(_config(), run, task=PlantedTask(), resume=True).finished
    assert not (run / LOCK).exists()  # a run that ended leaves no lock


def test_a_run_that_fails_while_being_made_leaves_nothing(tmp_path: Path) -> None:
    """The lock makes the folder; a bad option then stops the run: neither is left behind,
    and an empty folder holding only a stale lock is still free for a new run."""
    run = tmp_path / "new"
    with pytest.raises(Exception, match="population"):
        run_search(fast_config(strategy="spos", strategy_options={"population": -1}), run,
                   space=planted_space(), task=PlantedTask())
    assert not run.exists()
    run.mkdir()
    (run / LOCK).write_text("999999999\n")
    with pytest.warns(NasflowWarning, match="taking over the lock of process 999999999"):
        assert run_search(_config(), run, space=planted_space(), task=PlantedTask()).finished
    assert (run / "checkpoint.safetensors").is_file() and not (run / LOCK).exists()


def test_a_run_resumed_in_the_process_that_holds_it(tmp_path: Path) -> None:
    """Re-entrant: the holder itself may resume the run it holds (nothing to refuse)."""
    from nasflow.runs.lock import hold_run

    run = tmp_path / "run"
    with hold_run(run):
        run_search(_config(), run, space=planted_space(), task=PlantedTask(), stop_at=2)
        assert holder(run) == os.getpid()
        assert run_search(_config(), run, task=PlantedTask(), resume=True).finished
        assert holder(run) == os.getpid()
    assert not (run / LOCK).exists()
