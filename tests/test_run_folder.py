"""Runs stand alone (issue 12 item 6): the modules a space imports from its own folder are
copied into the run directory, the derived architecture's folder and model directories, so
a run moved to another folder derives, resumes and trains there; the copies stay untrusted
code (the same --trust-imports consent is needed). A task named 'module:attr' is found in
the current folder under the same rule."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasflow._plugins import lookup
from nasflow.cli.main import app
from nasflow.errors import NasflowError, NasflowWarning
from nasflow.space.imports import ENV, set_trust_imports
from nasflow.tasks.contract import TASKS

TESTS = Path(__file__).resolve().parent
runner = CliRunner()


def _module(folder: Path, name: str) -> None:
    """A module that registers op `{name}_conv` (a 1x1 conv with its exact cost)."""
    (folder / f"{name}.py").write_text(
        "from torch import nn\n"
        "from nasflow.ops.registry import register_op\n"
        f"@register_op('{name}_conv', params=lambda c_in, c_out: c_in * c_out,\n"
        "             madds_per_pixel=lambda c_in, c_out: c_in * c_out)\n"
        "def conv(c_in, c_out):\n"
        "    '''a 1x1 conv'''\n"
        "    return nn.Conv2d(c_in, c_out, 1, bias=False)\n")


def _nasflow(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env.update(PYTHONPATH=str(TESTS), OMP_NUM_THREADS="1")  # synthetic:PlantedTask is installed-like
    return subprocess.run([sys.executable, "-m", "nasflow.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_moved_run_derives_resumes_and_trains_with_the_same_consent(tmp_path, monkeypatch):
    name = f"mv_{uuid.uuid4().hex[:8]}"
    src, other = tmp_path / "src", tmp_path / "other"
    src.mkdir()
    other.mkdir()
    _module(src, name)
    (src / "space.yaml").write_text(
        f"name: moved\ntask: synthetic:PlantedTask\nimports: [{name}]\nparams: {{C: 4}}\ninputs: {{x: C, y: C}}\n"
        f"nodes:\n  m: {{choice: [{name}_conv, conv_3x3], in: x}}\n  out: {{combine: add, in: [m, y]}}\n"
        "output: out\n")
    common = ["--batch", "4", "--device", "cpu", "--task-opt", "keep=1.0", "--snapshot-steps", "none",
              "--log-every", "2", "--checkpoint-every", "2", "-q"]
    done = _nasflow(src, "--trust-imports", "search", "space.yaml", "--steps", "4", "--warmup", "1",
                    "--out", "run", *common)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (src / "run" / f"{name}.py").read_text() == (src / f"{name}.py").read_text()
    shutil.move(src / "run", other / "run")
    shutil.rmtree(src)  # the space file's folder is gone

    # The rest in this process, which has never imported the module: only the run's copy can
    # provide it now.
    monkeypatch.chdir(other)
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(sys, "path", [*sys.path, str(TESTS)])
    refused = runner.invoke(app, ["derive", "run"])
    assert refused.exit_code != 0 and "--trust-imports" in str(refused.exception) and name in str(refused.exception)
    assert name not in sys.modules
    try:
        with pytest.warns(NasflowWarning, match=rf"imported {name}"):
            derived = runner.invoke(app, ["--trust-imports", "derive", "run"])
        assert derived.exit_code == 0, derived.output
        assert Path(sys.modules[name].__file__).resolve() == (other / "run" / f"{name}.py").resolve()
        assert (other / "run" / "derived" / f"{name}.py").is_file()
        resumed = runner.invoke(app, ["--trust-imports", "search", "--resume", "--out", "run", "--steps", "6", "-q"])
        assert resumed.exit_code == 0, resumed.output
        assert '"step": 6' in (other / "run" / "metrics.jsonl").read_text()
        trained = runner.invoke(app, ["--trust-imports", "train", "run/derived", "--steps", "2", "--batch", "4",
                                      "--device", "cpu", "--task-opt", "keep=1.0", "--validate-every", "2",
                                      "--out", "t", "-q"])
        assert trained.exit_code == 0, trained.output
        for folder in ("t", "t/model"):  # the train run and its model directory carry it too
            assert (other / folder / f"{name}.py").is_file(), folder
    finally:
        set_trust_imports(None)
        sys.modules.pop(name, None)


@pytest.fixture
def cwd_task(tmp_path, monkeypatch):
    name = f"cwdtask_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "from nasflow.tasks import Task\n"
        "class Mine(Task):\n"
        "    '''A task defined in the current folder.'''\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV, raising=False)
    yield name
    set_trust_imports(None)
    sys.modules.pop(name, None)


def test_module_attr_from_the_current_folder_needs_trust(cwd_task, tmp_path):
    before = list(sys.path)
    with pytest.raises(NasflowError, match=rf"'{cwd_task}' is code in the current folder .*--trust-imports"):
        lookup(TASKS, "nasflow.tasks", f"{cwd_task}:Mine")
    assert cwd_task not in sys.modules
    set_trust_imports(True)
    with pytest.warns(NasflowWarning, match=rf"imported {cwd_task}"):
        found = lookup(TASKS, "nasflow.tasks", f"{cwd_task}:Mine")
    assert found.__name__ == "Mine" and found.__doc__ == "A task defined in the current folder."
    assert sys.path == before and str(tmp_path) not in sys.path
