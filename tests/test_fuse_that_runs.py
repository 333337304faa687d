"""`nasflow search --levers given` records fuse as the strategy runs it (issue 24 item 6): GDAS
and SPOS compute one candidate at a time, so their runs record fuse=False (and say so when
--fuse was asked for), while DARTS' records the fused kernels it runs. A run recorded with
the inert fuse=True before this still resumes, with or without --fuse / --no-fuse."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic import levers_folder
from typer.testing import CliRunner

from nasflow.cli.main import app

TINY = ["--warmup", "1", "--batch", "4", "--device", "cpu", "--snapshot-steps", "none", "-q"]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return levers_folder(tmp_path, monkeypatch)


def _nasflow(*args: str) -> str:
    done = CliRunner().invoke(app, list(args))
    assert done.exit_code == 0, done.output + repr(done.exception)
    return done.output


SPOS_SMALL = ["--strategy-opt", "population=2", "--strategy-opt", "generations=1", "--strategy-opt", "parents=1",
              "--strategy-opt", "bn_batches=1"]  # the toy space has 2 paths


@pytest.mark.parametrize("strategy, fused", [("gdas", False), ("spos", False), ("darts", True)])
@pytest.mark.parametrize("flag", [[], ["--fuse"]], ids=["default", "asked"])
def test_levers_given_records_fuse_as_it_runs(folder: Path, strategy: str, fused: bool, flag: list[str]) -> None:
    opts = SPOS_SMALL if strategy == "spos" else []
    out = _nasflow("search", "space.yaml", "--strategy", strategy, *opts, "--steps", "2", "--levers", "given",
                   "--out", "run", *flag, *TINY)
    assert json.loads((folder / "run" / "config.json").read_text())["fuse"] is fused
    said = f"--fuse: {strategy}'s mixed op does not fuse; it runs plain (fuse=False)"
    assert (said in out) == (bool(flag) and not fused)


@pytest.mark.parametrize("flag", [[], ["--fuse"], ["--no-fuse"]])
def test_a_run_that_recorded_an_inert_fuse_still_resumes(folder: Path, flag: list[str]) -> None:
    _nasflow("search", "space.yaml", "--strategy", "gdas", "--steps", "2", "--levers", "given", "--out", "run", *TINY)
    config = folder / "run" / "config.json"
    old = json.loads(config.read_text())
    config.write_text(json.dumps({**old, "fuse": True}))  # as runs recorded it before
    _nasflow("search", "--resume", "--out", "run", "--steps", "3", *flag, "-q")
    assert json.loads(config.read_text())["fuse"] is True  # the run's record is kept
