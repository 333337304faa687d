"""A few steps of search on the MobileNetV2 space through the CLI, on the classify task's
built-in set: SPOS (single path: one value per decision per step, then the evolution),
first-order DARTS (every value weighted: channel masks at the largest width, kernels run per
value) and the sandwich rule; `nasflow derive RUN` writes an architecture (the space with
the picked values as params) that builds, runs and costs what its model counts; after the
sandwich rule, `nasflow derive RUN --budget params=N` writes the best subnet under the budget
with weights inherited from the supernet, which load into its architecture and run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasflow.cli.main import app
from nasflow.compile.supernet import compile_graph
from nasflow.runs.modeldir import load_model
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space

SPACE = Path(__file__).resolve().parents[2] / "spaces" / "mobilenetv2" / "space.yaml"
EVOLUTION = ["--strategy-opt", "population=3", "--strategy-opt", "generations=2", "--strategy-opt", "bn_batches=1"]


def _ok(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("strategy", ["spos", "darts", "sandwich"])
def test_search_derive_build(tmp_path, strategy):
    run = tmp_path / strategy
    _ok(["search", str(SPACE), "--strategy", strategy, "--out", str(run), "--steps", "3", "--warmup", "1",
         "--batch", "4", "--task-opt", "test_samples=20", "--levers", "given", "-q",
         *(EVOLUTION if strategy in ("spos", "sandwich") else [])])
    _ok(["derive", str(run)])
    space = Space.from_yaml(SPACE)
    picked = json.loads((run / "derived" / "genotype.json").read_text())["values"]
    assert set(picked) == set(space.values)
    assert all(v in space.values[k] for k, v in picked.items())
    arch = Space.from_yaml(run / "derived" / "arch.yaml")
    assert not arch.values and all(arch.params[k] == v for k, v in picked.items())
    graph = build_graph(arch)
    assert graph.is_derived
    model = compile_graph(graph).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    cost = json.loads(_ok(["cost", str(run / "derived" / "arch.yaml"), "--size", "1x1", "--json"]))
    assert cost["params"] == sum(p.numel() for p in model.parameters())
    if strategy == "sandwich":  # train once, deploy many: subnets with inherited weights
        _ok(["derive", str(run), "--budget", "params=1M"])
        found = json.loads((run / "subnets" / "subnets.json").read_text())["subnets"]
        assert len(found) == 1 and found[0]["cost"] <= 1_000_000
        subnet, arch, _ = load_model(found[0]["model"])
        assert not arch.values and all(arch.params[k] == v for k, v in found[0]["genotype"]["values"].items())
        assert sum(p.numel() for p in subnet.parameters()) == found[0]["cost"]
        with torch.no_grad():
            assert subnet.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
