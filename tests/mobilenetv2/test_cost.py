"""`nasflow validate` and `nasflow cost` on the MobileNetV2 space: no torch imported, every
value decision listed, each value's cost shown; and those costs are exact: equal to counting
the modules built at those values (parameters, and torch's flop counter plus bias adds)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_torch_free import _CLI
import torch
from counting import counted_madds
from typer.testing import CliRunner

from nasflow import Space, build_graph, compile_graph
from nasflow.cli.main import app
from nasflow.spaces.mobilenetv2.points import values

ROOT = Path(__file__).resolve().parents[2]
SPACE = "spaces/mobilenetv2/space.yaml"
DECISIONS = ([f"W{s}" for s in range(8)] + [f"K{s}" for s in range(1, 8)] + [f"E{s}" for s in range(2, 8)]
             + [f"D{s}" for s in range(2, 7)])



def _cli_without_torch(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
    done = subprocess.run([sys.executable, "-c", _CLI, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TORCH False" in done.stderr
    return done.stdout


def test_validate_lists_the_value_decisions_without_torch():
    out = _cli_without_torch("validate", SPACE)
    assert "ok mobilenetv2: search space" in out and "26 value decision(s)" in out
    assert "value K3: values 3, 5, 7" in out and "value E4: values 3, 6" in out
    assert "value W6: values 80, 120, 160" in out and "value D5: values 2, 3, 4" in out


def test_cost_shows_each_values_cost_and_the_range_without_torch():
    out = _cli_without_torch("cost", SPACE, "--size", "7x7", "--totals")  # 224 x 224 images
    assert "value decisions" in out and "smallest values" in out and "largest values" in out
    for label in DECISIONS:
        assert f"| {label} " in out, label  # the table drawn in ASCII: output into a pipe
    data = json.loads(_cli_without_torch("cost", SPACE, "--size", "7x7", "--json"))
    assert data["input_size"] == [224, 224]
    assert set(data["values"]["per_value"]) == set(DECISIONS)
    assert list(data["values"]["per_value"]["K2"]) == ["3", "5", "7"]


def _counted(assignment: dict[str, int], size: int) -> tuple[int, int]:
    model = compile_graph(build_graph(Space.from_yaml(ROOT / SPACE), values=assignment)).eval()
    return sum(p.numel() for p in model.parameters()), counted_madds(model, torch.randn(1, 3, size, size))


@pytest.fixture(scope="module")
def cost_json() -> dict:
    result = CliRunner().invoke(app, ["cost", str(ROOT / SPACE), "--size", "1x1", "--json"])  # 32 x 32
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _top() -> dict[str, int]:
    return {k: max(v) for k, v in Space.from_yaml(ROOT / SPACE).values.items()}


@pytest.mark.parametrize("label, value", [("W4", 32), ("K3", 5), ("D5", 2), ("E6", 3)])
def test_a_values_cost_is_the_built_modules(cost_json, label, value):
    """A row of the per-value table (that value, the others at their largest) is what the
    model built at those values counts."""
    shown = cost_json["values"]["per_value"][label][str(value)]
    assert (shown["params"], shown["madds"]) == _counted({**_top(), label: value}, 32)


def test_the_range_is_the_smallest_and_largest_built_models(cost_json):
    space = Space.from_yaml(ROOT / SPACE)
    low = {k: min(v) for k, v in space.values.items()}
    for key, assignment in (("smallest", low), ("largest", _top())):
        shown = cost_json["values"][key]
        assert (shown["params"], shown["madds"]) == _counted(assignment, 32), key


def test_a_fixed_choice_costs_what_cost_set_says():
    """`nasflow cost SPACE --set ...` (every value fixed: torchvision's width 0.75) is the
    built model's count, and the space's own tables give the same."""
    sets = [a for k, v in values(0.75).items() for a in ("--set", f"{k}={v}")]
    result = CliRunner().invoke(app, ["cost", str(ROOT / SPACE), "--size", "1x1", "--json", *sets])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert "values" not in data  # nothing left to search
    assert (data["params"], data["madds"]) == _counted(values(0.75), 32)
