"""The contracts issue's residue (issue 24): what a run records is what runs on every entry
point (the Python API and sweeps, not only `nasflow search`): a GDAS or SPOS run, whose mixed
op computes one candidate at a time, records fuse=False, DARTS' keeps the fused kernels it
runs, and a resume through Python keeps what the run recorded."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from nasflow.search.config import SearchConfig
from nasflow.search.loop import run_search
from nasflow.search.sweep import gamma_values, run_sweep

SPACE = ("name: levers\ntask: synthetic:PlantedTask\nparams: {C: 4}\ninputs: {x: C, y: C}\n"
         "nodes:\n  m: {choice: [conv_1x1, conv_3x3], in: x}\n  out: {combine: add, in: [m, y]}\noutput: out\n")
SPOS_SMALL = {"population": 2, "generations": 1, "parents": 1, "bn_batches": 1}  # the toy space has 2 paths
FUSED = [("gdas", False), ("spos", False), ("darts", True)]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sys, "path", [*sys.path, str(Path(__file__).resolve().parent)])  # synthetic
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(SPACE)
    return tmp_path


def _config(strategy: str, **more: Any) -> SearchConfig:
    return SearchConfig(space="space.yaml", strategy=strategy, steps=2, warmup=1, batch_size=4, device="cpu",
                        snapshot_steps=[], log_every=1,
                        strategy_options=SPOS_SMALL if strategy == "spos" else {}, **more)


def _recorded(run: Path) -> dict[str, Any]:
    return json.loads((run / "config.json").read_text())


@pytest.mark.parametrize("strategy, fused", FUSED)
def test_python_api_records_fuse_as_it_runs(folder: Path, strategy: str, fused: bool) -> None:
    assert _config(strategy).fuse is True  # the default, asked for
    run_search(_config(strategy), folder / "run")
    assert _recorded(folder / "run")["fuse"] is fused


@pytest.mark.parametrize("strategy, fused", FUSED)
def test_sweep_records_fuse_as_it_runs(folder: Path, strategy: str, fused: bool) -> None:
    results = run_sweep(_config(strategy), folder / "sweep", gamma_values([0.0, 0.1]), parallel=1)
    assert [o.error for _, o in results] == [None, None]
    for value, _ in results:
        assert _recorded(folder / "sweep" / value.name)["fuse"] is fused


def test_python_resume_of_an_inert_fuse_keeps_the_record(folder: Path) -> None:
    """The same config resumed (fuse=True asked, False recorded) is no change; a run recorded
    with the inert True before this keeps it when resumed with fuse=False."""
    run_search(_config("gdas"), folder / "run", stop_at=1)
    result = run_search(_config("gdas"), folder / "run", resume=True)
    assert result.finished and _recorded(folder / "run")["fuse"] is False
    old = _recorded(folder / "run")
    (folder / "run" / "config.json").write_text(json.dumps({**old, "fuse": True, "steps": 2}))
    run_search(_config("gdas", fuse=False).model_copy(update={"steps": 3}), folder / "run", resume=True)
    assert _recorded(folder / "run")["fuse"] is True


def test_darts_resume_with_another_fuse_is_still_refused(folder: Path) -> None:
    from nasflow.errors import RunError

    run_search(_config("darts"), folder / "run", stop_at=1)
    with pytest.raises(RunError, match="fuse"):
        run_search(_config("darts", fuse=False), folder / "run", resume=True)
