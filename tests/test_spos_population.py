"""SPOS's population is bounded by the paths its space has (issue 25): one line before the
search starts, where the evolution drew on and on for distinct paths that did not exist."""
from __future__ import annotations

from pathlib import Path

import pytest
from synthetic import PlantedTask, fast_config, planted_space, register_task

from nasflow.cli.main import run as cli_run
from nasflow.errors import NasflowError
from nasflow.search.loop import run_search

PATHS = 6 * 6  # the planted space: 6 ops for m, 2 of 4 inputs for e


def _config(population: int):  # -> SearchConfig
    return fast_config(strategy="spos", steps=3, warmup=1, checkpoint_every=3, log_every=3,
                       strategy_options={"population": population, "generations": 1, "parents": 2, "bn_batches": 1})


def test_a_population_larger_than_the_space_is_refused_before_the_run(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(NasflowError, match=rf"population={PATHS + 1} is more than the {PATHS} paths space 'planted' "
                                           rf"has: use population={PATHS} or fewer"):
        run_search(_config(PATHS + 1), tmp_path / "run", space=planted_space(), task=PlantedTask())
    assert not (tmp_path / "run").exists()
    space = tmp_path / "space.yaml"
    space.write_text(planted_space(task=register_task()).to_yaml())
    with pytest.raises(SystemExit) as done:
        cli_run(["search", str(space), "--strategy", "spos", "--strategy-opt", "population=1000000000",
                 "--out", str(tmp_path / "run"), "-q", "--steps", "3", "--warmup", "1"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "population=1000000000 is more than the 36 paths" in " ".join(err.split())


def test_a_population_of_every_path_is_allowed(tmp_path: Path) -> None:
    result = run_search(_config(PATHS), tmp_path / "run", space=planted_space(), task=PlantedTask())
    assert result.finished and result.chosen
