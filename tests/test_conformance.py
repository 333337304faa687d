"""The conformance kit (issue 24): every built-in op, strategy and task passes it, and so do
the docs' examples (the strategies of writing-a-strategy.md, the ops and task of
writing-a-task.md); deliberately broken plugins get the one line each failure deserves (a
wrong cost, strategy state that does not survive resume, a task whose metric is undeclared)."""
from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from synthetic import PlantedTask, planted_space
from torch import nn

import nasflow.spaces.darts.ops  # noqa: F401 - registers the DARTS ops
from nasflow._plugins import _LOCAL_PLUGINS
from nasflow.space.imports import _LOCAL
import nasflow.spaces.dlsr.ops  # noqa: F401 - registers ESA
from nasflow.ops.registry import OPS, register_op
from nasflow.search.conformance import Check, check_module, check_op, check_strategy, check_task
from nasflow.space.load import load_space
from nasflow.strategies import STRATEGIES, Darts, register_strategy
from nasflow.tasks.contract import TASKS, make_task

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _failures(checks: list[Check]) -> list[str]:
    assert checks, "nothing was checked"
    return [c.line() for c in checks if not c.ok]


# --- the kit in CI: every built-in plugin and the docs' examples -----------------------------------
def test_every_builtin_op_conforms():
    def module(name: str) -> str:
        source = OPS.get(name).source
        return source.split(":")[0] if isinstance(source, str) else getattr(source, "__module__", "")

    shipped = [n for n in OPS.names() if module(n).startswith("nasflow.")]  # not what other tests register
    assert {"conv_3x3", "darts_classifier", "esa"} <= set(shipped)
    failed = [line for name in shipped for line in _failures(check_op(name))]
    assert not failed, failed


SHIPPED_STRATEGIES = ["darts", "darts2", "drnas", "gdas", "milenas", "pcdarts", "sandwich", "spos"]


def test_the_list_of_shipped_strategies_is_whole():
    shipped = {n for n in STRATEGIES.names() if STRATEGIES.get(n).__module__.startswith("nasflow.strategies.")}
    assert shipped == set(SHIPPED_STRATEGIES)


@pytest.mark.parametrize("name", SHIPPED_STRATEGIES)
def test_every_builtin_strategy_conforms(name: str):
    assert not _failures(check_strategy(name))


@pytest.mark.parametrize("task, space, params", [("sr", "spaces/dlsr/space.yaml", {"channels": 8}),
                                                 ("classify", "spaces/darts/space.yaml", {"C": 4, "layers": 2})])
def test_every_builtin_task_conforms(task: str, space: str, params: dict[str, int]):
    searched = load_space(ROOT / space, params)
    assert not _failures(check_task(make_task(task, {}, searched), searched))


def _doc_blocks(page: str, pattern: str) -> dict[str, str]:
    return dict(re.findall(pattern, (DOCS / page).read_text(), flags=re.S))


@pytest.fixture
def doc_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.setenv("NASFLOW_TRUST_IMPORTS", "1")
    modules = set(sys.modules)
    registries = (OPS, STRATEGIES, TASKS)
    names = [set(r.names()) for r in registries]
    yield tmp_path
    for name in ("my_gumbel", "my_threshold", "featreg"):  # imported afresh by their own tests
        if name not in modules:
            sys.modules.pop(name, None)
            _LOCAL_PLUGINS.pop(name, None)
            _LOCAL.pop(name, None)
    for registry, had in zip(registries, names):  # and their ops, strategies, tasks unregistered with them
        for name in set(registry.names()) - had:
            registry.remove(name)


def test_the_docs_example_strategies_conform(doc_folder: Path):
    (hard_gumbel,) = re.findall(r"```python\n(.*?)```", (DOCS / "writing-a-strategy.md").read_text(), flags=re.S)
    (doc_folder / "my_gumbel.py").write_text(hard_gumbel)
    (threshold,) = re.findall(r'```python title="my_threshold.py"\n(.*?)```',
                              (DOCS / "writing-a-strategy.md").read_text(), flags=re.S)
    (doc_folder / "my_threshold.py").write_text(threshold)
    assert not _failures(check_strategy("my_gumbel:HardGumbel"))
    assert not _failures(check_strategy("my_threshold:Threshold", {"threshold": 0.3}))


def test_the_docs_example_ops_and_task_conform(doc_folder: Path):
    files = _doc_blocks("writing-a-task.md", r"```\w+ file=(\S+)\n(.*?)```")
    for name, body in files.items():
        (doc_folder / name).write_text(body)
    assert not _failures(check_module("featreg"))  # its vector ops (linear layers), checked on vectors
    space = load_space(doc_folder / "featreg.yaml")  # its task, named module:Class by the space
    assert not _failures(check_task(make_task(space.task, {}, space), space))


def test_builtin_ops_strategy_and_task_pass():
    for name in ("conv_3x3", "sep_conv_3x3", "dil_conv_3x3"):
        assert all(c.ok for c in check_op(name)), [c.line() for c in check_op(name) if not c.ok]
    checks = check_strategy("darts")
    assert all(c.ok for c in checks), [c.line() for c in checks if not c.ok]
    checks = {c.what: c for c in check_task(PlantedTask(), planted_space())}
    assert checks["batches resume exactly"].ok and checks["metrics declared"].ok
    # The tests' planted task declares no export_size for its images: the kit says so.
    assert "Expected 3D (unbatched) or 4D (batched) input" in checks["export sample fits the model"].why


def test_a_wrong_cost_is_one_line_with_both_numbers():
    name = f"biased_{uuid.uuid4().hex[:6]}"
    register_op(name, params=lambda c_in, c_out: c_in * c_out,
                madds_per_pixel=lambda c_in, c_out: c_in * c_out)(lambda c_in, c_out: nn.Conv2d(c_in, c_out, 1))
    try:
        failed = [c.line() for c in check_op(name) if not c.ok]
    finally:
        OPS.remove(name)
    assert f"op '{name}': params at 4->4: declares 16 params, the module has 20" in failed
    assert f"op '{name}': Multi-Adds at 4->4: declares 1280 Multi-Adds at 8x10, counting gives 1600" in failed


def test_a_strategy_whose_state_does_not_survive_resume_is_named():
    name = f"forgetful_{uuid.uuid4().hex[:6]}"

    @register_strategy(name)
    class Forgetful(Darts):
        """nudges alpha by a count it never saves"""

        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            self.n = 0

        def on_step(self, step: int, total: int) -> None:
            self.n += 1
            with torch.no_grad():
                for p in self.a_optimizer.param_groups[0]["params"]:
                    p.add_(0.01 * self.n)

    try:
        lines = [c.line() for c in check_strategy(name) if not c.ok]
    finally:
        STRATEGIES.remove(name)
    assert any(line.startswith(f"strategy '{name}': resume is exact: stopped at step 3 and resumed, ") and
               "differ from an uninterrupted run" in line for line in lines), lines


def test_a_task_with_an_undeclared_metric_is_named():
    class Undeclared(PlantedTask):
        name = "undeclared"

        def evaluate(self, model: nn.Module) -> dict[str, float]:
            return {**super().evaluate(model), "psnr": 30.0}

    lines = [c.line() for c in check_task(Undeclared(), planted_space()) if not c.ok]
    assert any(line.startswith("task 'undeclared': metrics declared: evaluate returns psnr, not declared in "
                               "`metrics`") for line in lines), lines
