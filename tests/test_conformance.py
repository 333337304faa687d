"""The conformance kit (issue 24): built-in plugins pass it, and deliberately broken ones get
the one line each failure deserves (a wrong cost, strategy state that does not survive resume,
a task whose metric is undeclared)."""
from __future__ import annotations

import uuid
from typing import Any

import torch
from synthetic import PlantedTask, planted_space
from torch import nn

from nasflow.ops.registry import OPS, register_op
from nasflow.search.conformance import check_op, check_strategy, check_task
from nasflow.strategies import STRATEGIES, Darts, register_strategy


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
    assert f"op '{name}': Multi-Adds at 4->4: declares 1024 Multi-Adds at 8x8, counting gives 1280" in failed


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
