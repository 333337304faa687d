"""Checking and costing a space imports no torch (issue 15, item 7): op specs are pure
Python and their torch factories load when a model is built; `cost` without --size reads the
task's size from its torch-free facts (nasflow.space.task_facts). Also: a lazily named factory
must take exactly the args its spec declares, and an op registered without a cost is still
refused when its module has parameters."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasflow.compile.mixed_ops import build_op
from nasflow.errors import NasflowError
from nasflow.ops.registry import OPS, register_op

ROOT = Path(__file__).resolve().parents[1]
SPACES = ["spaces/dlsr/space.yaml", "spaces/dlsr/dlsr.yaml", "spaces/darts/space.yaml", "spaces/mobilenetv2/space.yaml"]

_LIBRARY = """
import sys
from nasflow.space.cost import graph_cost, input_size_for_output
from nasflow.space.load import load_graph
for path in sys.argv[1:]:
    graph = load_graph(path)
    report = graph_cost(graph, input_size_for_output(graph, (64, 64)))
    assert report.params > 0 and report.madds > 0, path
print('TORCH', 'torch' in sys.modules)
"""

_CLI = """
import sys
sys.argv = ['nasflow', *sys.argv[1:]]
from nasflow.cli.main import main
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
print('TORCH', 'torch' in sys.modules, file=sys.stderr)
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_library_validate_and_cost_import_no_torch() -> None:
    assert "TORCH False" in _python(_LIBRARY, *SPACES).stdout


@pytest.mark.parametrize("args", [
    ("validate", "spaces/dlsr/space.yaml"),
    ("cost", "spaces/dlsr/dlsr.yaml", "--size", "1280x720", "--totals"),
    ("validate", "spaces/darts/space.yaml"),
    ("cost", "spaces/darts/space.yaml", "--size", "32x32", "--totals"),
    ("cost", "spaces/dlsr/space.yaml", "--totals"),  # no --size: the task's facts, not its class
    ("cost", "spaces/darts/space.yaml", "--totals"),
])
def test_cli_validate_and_cost_import_no_torch(args: tuple[str, ...]) -> None:
    done = _python(_CLI, *args)
    assert "TORCH False" in done.stderr
    assert ("ok " in done.stdout) if args[0] == "validate" else ("total" in done.stdout)


def test_dlsr_cost_through_the_lazy_path_is_the_known_count() -> None:
    done = _python(_CLI, "cost", "spaces/dlsr/dlsr.yaml", "--size", "1280x720", "--totals", "--json")
    assert '"params": 322620' in done.stdout and "TORCH False" in done.stderr


@pytest.mark.parametrize("space, size", [("spaces/dlsr/space.yaml", "1280x720"), ("spaces/darts/space.yaml", "8x8")])
def test_cost_without_size_is_the_task_class_size_without_torch(space: str, size: str) -> None:
    """The facts give the size the task class gives (cost with that --size counts the same)."""
    import json

    from nasflow.space.load import load_graph
    from nasflow.tasks.contract import default_cost_size

    w, h = (int(v) for v in size.split("x"))
    assert default_cost_size(load_graph(ROOT / space).space) == (h, w)  # the class, checked against the facts
    plain = _python(_CLI, "cost", space, "--totals", "--json")
    sized = _python(_CLI, "cost", space, "--size", size, "--totals", "--json")
    assert "TORCH False" in plain.stderr
    assert json.loads(plain.stdout) == json.loads(sized.stdout)


def test_every_installed_task_declares_the_facts_its_class_has() -> None:
    from importlib.metadata import entry_points

    from nasflow.space.task_facts import GROUP, task_facts

    tasks = {ep.name: ep for ep in entry_points(group="nasflow.tasks")}
    facts = {ep.name for ep in entry_points(group=GROUP)}
    assert {"sr", "classify"} <= facts <= set(tasks)
    for name in facts:
        assert task_facts(name).cost_size == tasks[name].load().cost_size, name


def test_facts_that_disagree_with_the_task_class_are_one_clear_error() -> None:
    from synthetic import planted_space

    from nasflow.space.task_facts import TASK_FACTS, TaskFacts, declared_cost_size, register_task_facts
    from nasflow.tasks.contract import TASKS, Task, default_cost_size, register_task

    name = "test_facts_mismatch"

    class _Sized(Task):
        cost_size = (2, 2)

    register_task(name)(_Sized)
    register_task_facts(name)(TaskFacts(cost_size=(3, 3)))
    try:
        space = planted_space(task=name)
        assert declared_cost_size(space) == (3, 3)  # what `cost` reads, torch-free
        with pytest.raises(NasflowError, match=r"task 'test_facts_mismatch' declares cost_size \(3, 3\) in "
                                               r"its facts .* but \(2, 2\) on its class"):
            default_cost_size(space)
        TASK_FACTS.remove(name)
        assert declared_cost_size(space) is None and default_cost_size(space) == (2, 2)  # no facts: the class
    finally:
        TASKS.remove(name)
        if name in TASK_FACTS:
            TASK_FACTS.remove(name)


def test_every_lazily_named_factory_loads_and_agrees_with_its_spec() -> None:
    import nasflow.spaces.darts.ops  # noqa: F401  (register their specs)
    import nasflow.spaces.dlsr.ops  # noqa: F401

    lazy = [name for name in OPS.names() if isinstance(OPS.get(name).source, str)]
    assert {"conv_3x3", "esa", "darts_sep_conv_3x3", "pixel_shuffle"} <= set(lazy)
    for name in lazy:
        assert callable(OPS.get(name).factory), name  # raises when args and signature differ


def test_a_factory_whose_args_differ_from_the_spec_is_one_clear_error() -> None:
    name = "test_lazy_mismatch"
    register_op(name, factory="nasflow.ops.builtin_modules:conv_3x3", args={"bias": False, "groups": 1},
                params=lambda c_in, c_out, **_: 9 * c_in * c_out)
    try:
        with pytest.raises(NasflowError, match="op 'test_lazy_mismatch'.*conv_3x3 takes.*make them agree"):
            build_op(name, 4, 4, {})
    finally:
        OPS.remove(name)


def test_a_factory_that_cannot_be_found_is_one_clear_error() -> None:
    name = "test_lazy_missing"
    register_op(name, factory="nasflow.ops.builtin_modules:no_such_factory", same_channels=True)
    try:
        with pytest.raises(NasflowError, match="op 'test_lazy_missing': cannot load its factory"):
            build_op(name, 4, 4, {})
    finally:
        OPS.remove(name)
    with pytest.raises(NasflowError, match="must be 'module:attr'"):
        register_op("test_lazy_no_attr", factory="nasflow.ops.builtin_modules")


def test_a_lazy_op_without_a_cost_whose_module_has_parameters_is_refused() -> None:
    name = "test_lazy_uncosted"
    register_op(name, factory="nasflow.ops.builtin_modules:conv_3x3", args={"bias": False})
    try:
        with pytest.raises(NasflowError, match="registered without a cost, but its module has 144 parameters"):
            build_op(name, 4, 4, {})
    finally:
        OPS.remove(name)


@pytest.mark.parametrize("command", ["search", "derive"])
def test_search_and_derive_help_import_no_torch(command: str) -> None:
    """Their help names the strategies and their options from cli/strategy_help.py's table,
    not from the strategies' torch modules (10.8 s and 259 MB under load before)."""
    done = _python(_CLI, command, "--help")
    assert "TORCH False" in done.stderr
    assert "--out" in done.stdout
    if command == "search":
        assert "milenas" in done.stdout and "reuse_forward=False" in done.stdout
