"""The second instance end to end through the CLI, in a few steps: search the DARTS space
on the built-in set, derive the searched cells at another width (--set on a run
directory), train the derived architecture and evaluate it through the task."""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from nasflow.cli.main import app
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
    _ok(["train", str(s / "derived" / "arch.yaml"), "--out", str(t), "--steps", "2", "--batch", "4",
         "--validate-every", "2", "--set", "C=2", "--task-opt", "test_samples=20", "-q"])
    out = json.loads(_ok(["eval", str(t / "best"), "--json"]))
    assert 0.0 <= out["metrics"]["top1"] <= 100.0
