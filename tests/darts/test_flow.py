"""The second instance end to end through the CLI, in a few steps: search the DARTS space
on the built-in set, derive the searched cells at another width (--set on a run
directory), and deeper (--set layers=20: the 20-cell evaluation network from the 8-cell
search), train the derived architecture and evaluate it through the task."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from nasflow.cli.main import app
from nasflow.compile.supernet import compile_graph
from nasflow.space.graph import build_graph
from nasflow.space.schema import Space

SPACE = Path(__file__).resolve().parents[2] / "spaces" / "darts" / "space.yaml"
runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_search_derive_wider_train_eval(tmp_path, monkeypatch):
    monkeypatch.setenv("NASFLOW_CACHE", str(tmp_path / "cache"))  # eval's ONNX export: this run's own
    s, t = tmp_path / "s", tmp_path / "t"
    _ok(["search", str(SPACE), "--out", str(s), "--steps", "3", "--warmup", "1", "--batch", "4",
         "--set", "C=2", "-q"])
    _ok(["derive", str(s), "--set", "C=6"])
    arch = Space.from_yaml(s / "derived" / "arch.yaml")
    assert arch.params["C"] == 6
    graph = build_graph(arch)  # validates
    assert graph.is_derived and graph.nodes["head"].c_in[0] == 4 * 4 * 6
    # The 8-cell search's cells at evaluation depth and width: one file, 20 cells.
    _ok(["derive", str(s), "--set", "layers=20", "--set", "C=36", "--out", str(tmp_path / "eval20")])
    deep = Space.from_yaml(tmp_path / "eval20" / "arch.yaml")
    assert deep.params["layers"] == 20 and deep.params["C"] == 36
    deep_graph = build_graph(deep)
    assert deep_graph.is_derived and len(deep_graph.stacks["cell"]) == 20
    model = compile_graph(deep_graph).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    _ok(["train", str(s / "derived" / "arch.yaml"), "--out", str(t), "--steps", "2", "--batch", "4",
         "--validate-every", "2", "--set", "C=2", "--task-opt", "test_samples=20", "-q"])
    out = json.loads(_ok(["eval", str(t / "best"), "--json"]))
    assert 0.0 <= out["metrics"]["top1"] <= 100.0
