"""A space's `imports:` runs code from the space file's folder only when trusted (issue 15):
untrusted, nothing is imported and an op the module would register is one error naming the
module and --trust-imports; trusted, the module is imported and named; the folder never
stays on sys.path; installed modules are always imported."""
from __future__ import annotations

import sys
import uuid

import pytest
from typer.testing import CliRunner

from nasflow.cli.main import app
from nasflow.errors import NasflowWarning, SpaceError
from nasflow.space.graph import build_graph
from nasflow.space.imports import ENV, set_trust_imports
from nasflow.space.schema import Space

runner = CliRunner()


@pytest.fixture
def space_with_module(tmp_path):
    """(space file, module name, op name, marker file the module writes when it runs)."""
    name = f"ops_{uuid.uuid4().hex[:10]}"  # fresh per test: sys.modules remembers imports
    op = f"{name}_conv"
    marker = tmp_path / "ran.txt"
    (tmp_path / f"{name}.py").write_text(
        "from pathlib import Path\n"
        "from torch import nn\n"
        "from nasflow.ops.registry import register_op\n"
        f"Path({str(marker)!r}).write_text('ran')\n"
        f"@register_op({op!r}, params=lambda c_in, c_out: c_in * c_out, madds_per_pixel=lambda c_in, c_out: c_in * c_out)\n"
        "def conv(c_in, c_out):\n"
        "    '''a 1x1 conv'''\n"
        "    return nn.Conv2d(c_in, c_out, 1, bias=False)\n")
    path = tmp_path / "space.yaml"
    path.write_text(f"name: t\nimports: [{name}]\ninputs: {{x: 3}}\n"
                    f"nodes:\n  a: {{op: {op}, in: x, out: 4}}\noutput: a\n")
    yield path, name, op, marker
    set_trust_imports(None)
    sys.modules.pop(name, None)  # its op stays registered under a name no other test uses


def test_untrusted_module_beside_the_space_does_not_run(space_with_module, monkeypatch):
    path, name, op, marker = space_with_module
    monkeypatch.delenv(ENV, raising=False)
    before = list(sys.path)
    with pytest.raises(SpaceError) as info:
        build_graph(Space.from_yaml(path))
    text = str(info.value)
    assert f"'{op}'" in text and f"'{name}'" in text and "--trust-imports" in text and ENV in text
    assert not marker.exists() and name not in sys.modules and sys.path == before


def test_trusted_module_runs_is_named_and_leaves_sys_path_alone(space_with_module, monkeypatch):
    path, name, op, marker = space_with_module
    before = list(sys.path)
    monkeypatch.setenv(ENV, "1")  # the setting
    with pytest.warns(NasflowWarning, match=rf"imported {name}"):
        graph = build_graph(Space.from_yaml(path))
    assert graph.nodes["a"].op == op and marker.exists()
    assert sys.path == before and str(path.parent) not in sys.path


def test_cli_trust_imports_flag(space_with_module, monkeypatch):
    path, name, op, marker = space_with_module
    monkeypatch.delenv(ENV, raising=False)
    refused = runner.invoke(app, ["validate", str(path)])
    assert refused.exit_code != 0 and "--trust-imports" in str(refused.exception) and not marker.exists()
    with pytest.warns(NasflowWarning, match=rf"imported {name}"):
        ok = runner.invoke(app, ["--trust-imports", "validate", str(path)])
    assert ok.exit_code == 0, ok.output
    assert marker.exists()


def test_installed_modules_are_imported_without_trust(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    path = tmp_path / "space.yaml"
    path.write_text("name: t\nimports: [nasflow.ops.builtin]\ninputs: {x: 3}\n"
                    "nodes:\n  a: {op: conv_1x1, in: x, out: 4}\noutput: a\n")
    assert build_graph(Space.from_yaml(path)).nodes["a"].op == "conv_1x1"
    path.write_text("name: t\nimports: [no_such_module_xyz]\ninputs: {x: 3}\n"
                    "nodes:\n  a: {op: conv_1x1, in: x}\noutput: a\n")
    with pytest.raises(SpaceError, match="cannot import module 'no_such_module_xyz'"):
        build_graph(Space.from_yaml(path))


@pytest.fixture
def space_with_task(tmp_path):
    """(space file, module name, marker) for a space whose `task: module:attr` is a module
    beside it (no `imports:`), which writes the marker when it runs."""
    name = f"task_{uuid.uuid4().hex[:10]}"
    marker = tmp_path / "ran.txt"
    (tmp_path / f"{name}.py").write_text(
        "from pathlib import Path\n"
        "from nasflow.tasks import Task\n"
        f"Path({str(marker)!r}).write_text('ran')\n"
        "class MyTask(Task):\n"
        "    cost_size = (3, 5)\n")
    path = tmp_path / "space.yaml"
    path.write_text(f"name: t\ntask: {name}:MyTask\ninputs: {{x: 3}}\n"
                    "nodes:\n  a: {op: conv_1x1, in: x, out: 4}\noutput: a\n")
    yield path, name, marker
    set_trust_imports(None)
    sys.modules.pop(name, None)


def test_untrusted_task_module_beside_the_space_is_refused(space_with_task, monkeypatch):
    from nasflow.tasks.contract import default_cost_size, make_task

    path, name, marker = space_with_task
    monkeypatch.delenv(ENV, raising=False)
    before = list(sys.path)
    space = Space.from_yaml(path)
    for look_up in (lambda: default_cost_size(space), lambda: make_task(None, {}, space)):
        with pytest.raises(SpaceError) as info:
            look_up()
        text = str(info.value)
        assert f"task '{name}:MyTask'" in text and f"module '{name}'" in text and str(path.parent) in text
        assert "--trust-imports" in text and ENV in text and f"{path}:2" in text  # the `task:` line
    assert not marker.exists() and name not in sys.modules and sys.path == before
    refused = runner.invoke(app, ["cost", str(path)])  # no --size: the task's size is asked for
    assert refused.exit_code != 0 and "--trust-imports" in str(refused.exception) and not marker.exists()


def test_trusted_task_module_runs_is_named_and_leaves_sys_path_alone(space_with_task, monkeypatch):
    from nasflow.tasks.contract import default_cost_size

    path, name, marker = space_with_task
    monkeypatch.delenv(ENV, raising=False)
    set_trust_imports(True)  # as --trust-imports does
    before = list(sys.path)
    with pytest.warns(NasflowWarning, match=rf"imported {name}"):
        assert default_cost_size(Space.from_yaml(path)) == (3, 5)
    assert marker.exists() and sys.path == before


def test_untrusted_task_module_in_the_current_folder_is_refused_by_name(space_with_task, monkeypatch):
    """The preset look-ups get the task's name alone: a module in the current folder is
    refused there too, and a name from an installed package is not."""
    from nasflow.tasks.contract import get_task_factory
    from nasflow.tasks.presets import task_presets

    path, name, marker = space_with_task
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.chdir(path.parent)
    with pytest.raises(SpaceError, match=rf"module '{name}'.*--trust-imports"):
        task_presets(f"{name}:MyTask")
    assert not marker.exists() and name not in sys.modules
    assert get_task_factory("nasflow.spaces.dlsr.task:SRTask").name == "sr"
