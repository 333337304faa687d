"""`nasflow eval MODEL --NAME VALUE`: options the command does not know are the model's
task's evaluation options (Task.eval_options), parsed and checked against its model."""
from __future__ import annotations

from pathlib import Path

import pytest

from nasflow.cli.eval_cmds import parse_extra_options
from nasflow.errors import NasflowError
from nasflow.spaces.dlsr.eval_report import SREvalOptions
from nasflow.spaces.dlsr.task import SRTask
from nasflow.tasks.contract import Task


def test_extra_options_become_the_tasks_eval_options():
    given = parse_extra_options(["--bench", "a", "--bench=b", "--scale", "3"], {"bench"})
    assert given == {"bench": ["a", "b"], "scale": "3"}
    options = SRTask.parse_eval_options(given)
    assert isinstance(options, SREvalOptions) and options.bench == [Path("a"), Path("b")] and options.scale == 3
    assert parse_extra_options(["--some-flag"], set()) == {"some_flag": "true"}


def test_bad_eval_options_are_one_clear_error():
    with pytest.raises(NasflowError, match="--scale given twice"):
        parse_extra_options(["--scale", "2", "--scale", "3"], {"bench"})
    with pytest.raises(NasflowError, match="unexpected argument 'stray'"):
        parse_extra_options(["stray"], set())
    with pytest.raises(NasflowError, match=r"task 'sr' evaluation options: scale: .*its options: --bench, --scale"):
        SRTask.parse_eval_options({"scale": "two"})
    with pytest.raises(NasflowError, match=r"evaluation options: bench: Extra inputs.*its options: none"):
        Task.parse_eval_options({"bench": "x"})
