"""An unknown key in a task preset's search section is one line naming the preset and task it
came from, and the keys that section takes (issue 24 item 5): before, the user saw only
"search config: unknown setting", with no hint that the key was not theirs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from synthetic import PlantedTask
from typer.testing import CliRunner

from nasflow.cli.main import app
from nasflow.errors import NasflowError
from nasflow.search.config import SearchConfig
from nasflow.tasks.contract import TASKS, register_task
from nasflow.tasks.presets import task_presets

TASK = "typo-preset-test"
SPACE = (f"name: typo\ntask: {TASK}\nparams: {{C: 4}}\ninputs: {{x: C, y: C}}\n"
         "nodes:\n  m: {choice: [conv_1x1, conv_3x3], in: x}\n  out: {combine: add, in: [m, y]}\noutput: out\n")


class TypoPresets(PlantedTask):
    presets = {"quick": {"search": {"steps": 2, "warmup": 1, "weight_optim": {"lr": 1e-3}}},
               "paper": {"search": {"steps": 2, "warmup": 1, "arch_optim": {"beta": [0.5, 0.9]}}}}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(SPACE)
    register_task(TASK)(TypoPresets)
    yield tmp_path
    TASKS.remove(TASK)


@pytest.mark.parametrize("preset, line", [
    ([], "preset 'quick' of task 'typo-preset-test': unknown setting 'weight_optim' "
         "(did you mean 'weights_optim'?); the settings are: space, overrides"),
    (["--preset", "paper"], "preset 'paper' of task 'typo-preset-test': unknown setting 'arch_optim.beta' "
                            "(did you mean 'betas'?); arch_optim takes: lr, betas, weight_decay"),
])
def test_an_unknown_preset_key_names_its_preset(folder: Path, preset: list[str], line: str) -> None:
    done = CliRunner().invoke(app, ["search", "space.yaml", *preset, "--device", "cpu", "--levers", "given",
                                    "--out", "run"])
    # a NasflowError: `nasflow` prints it as one line "error: ..." and exits 2 (cli/app.run)
    assert isinstance(done.exception, NasflowError), done.output + repr(done.exception)
    message = str(done.exception)
    assert message.startswith(line) and "\n" not in message, message
    assert not (folder / "run").exists()


def test_a_users_unknown_key_still_says_search_config() -> None:
    with pytest.raises(NasflowError, match=r"^search config: unknown setting 'weight_optim'"):
        SearchConfig.build({"weight_optim": {"lr": 1e-3}})


@pytest.mark.parametrize("task", ["sr", "classify"])
def test_the_built_in_presets_pass(task: str) -> None:
    presets = task_presets(task)
    assert presets
    for name, sections in presets.items():
        SearchConfig.check_preset(sections.get("search", {}), name, task)


def test_sweep_names_the_preset_too(folder: Path) -> None:
    done = CliRunner().invoke(app, ["sweep", "space.yaml", "--gamma", "0,0.1", "--device", "cpu", "--out", "sw"])
    assert isinstance(done.exception, NasflowError), done.output + repr(done.exception)
    assert str(done.exception).startswith("preset 'quick' of task 'typo-preset-test': unknown setting 'weight_optim'")
    assert not (folder / "sw").exists()
