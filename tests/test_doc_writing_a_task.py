"""docs/writing-a-task.md runs as written: its files are copied into a fresh folder and its
commands (validate, cost, search, derive, train, eval, export) run through the CLI on a
task whose inputs are N x F feature vectors, not images: no 4-D or SR assumption is left
in the engine's path."""
from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasflow.cli.main import app
from nasflow.compile.supernet import compile_graph
from nasflow.runs.modeldir import load_model, read_meta
from nasflow.space.cost import graph_cost
from nasflow.space.load import load_graph
from nasflow.train.run_dir import TrainRunDir

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-task.md"
# Trusted, the example's module is named to the user when first imported: expected here.
pytestmark = pytest.mark.filterwarnings("ignore:ran code that came with the space file:nasflow.errors.NasflowWarning")


def doc_files(text: str) -> dict[str, str]:
    """{file name: contents} of the doc's ```LANG file=NAME blocks."""
    return {name: body for name, body in re.findall(r"```\w+ file=(\S+)\n(.*?)```", text, re.S)}


def doc_commands(text: str) -> list[list[str]]:
    """The `nasflow ...` lines of the doc's ```sh block, as argument lists."""
    (block,) = re.findall(r"```sh\n(.*?)```", text, re.S)
    lines = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert lines and all(words[0] == "nasflow" for words in lines)
    return [words[1:] for words in lines]


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    text = DOC.read_text()
    files = doc_files(text)
    assert set(files) == {"featreg.py", "featreg.yaml"}
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the space's imports add folders: undone after
    monkeypatch.setenv("NASFLOW_TRUST_IMPORTS", "1")  # as the doc says: featreg.py came with the space
    return tmp_path


def test_the_docs_example_task_runs_search_derive_train_eval(example: Path) -> None:
    runner = CliRunner()
    outputs: dict[str, str] = {}
    for args in doc_commands(DOC.read_text()):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"nasflow {' '.join(args)}:\n{result.output}\n{result.exception!r}"
        outputs[args[0]] = result.output
    assert outputs.keys() >= {"validate", "cost", "search", "derive", "train", "eval", "export"}
    assert "2 alpha decision(s), 1 beta decision(s)" in outputs["validate"]

    # The example's ops declare exact costs: the supernet's parameters are what they count.
    graph = load_graph("featreg.yaml")
    report = graph_cost(graph, (1, 1))
    assert report.params == sum(p.numel() for p in compile_graph(graph).weights())  # arch params aside
    assert f"{report.params:,}" in outputs["cost"] and "1x1 input" in outputs["cost"]

    derived = load_graph("runs/s/derived/arch.yaml")
    assert derived.is_derived and derived.nodes["x"].c_out == 8

    # best/ is picked by the task's declared best metric (r2) in its direction (higher).
    valid = [r["valid"] for r in TrainRunDir("runs/t").read_metrics() if "valid" in r]
    assert len(valid) == 3 and all(set(v) == {"mse", "r2"} for v in valid)
    meta = read_meta("runs/t/best")
    assert meta["best"]["metric"] == "r2" and meta["best"]["value"] == max(v["r2"] for v in valid)
    assert "scale" not in meta and "channels" not in meta  # no SR facts in a non-SR model's meta
    assert meta["task"] == load_model("runs/t/best")[1].task == "featreg:FeatureRegression"

    # eval runs the model's task's evaluate; a trained MLP explains most of the variance.
    scored = json.loads(outputs["eval"])
    assert scored["task"] == "featreg" and scored["madds_output_size"] == [1, 1]
    assert scored["metrics"]["r2"] == pytest.approx(meta["best"]["value"], abs=1e-6)
    assert scored["metrics"]["r2"] > 0.5 and scored["params"] == sum(
        p.numel() for p in load_model("runs/t/best")[0].parameters())

    # The ONNX export takes N x 8 vectors under the base task's names, batch dynamic.
    onnx = pytest.importorskip("onnx")
    (inp,) = onnx.load("featreg.onnx").graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "input" and dims == ["n", 8]


def test_eval_options_of_a_task_without_any_are_refused(example: Path) -> None:
    runner = CliRunner()
    for args in doc_commands(DOC.read_text())[2:5]:  # search, derive, train
        assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, ["eval", "runs/t/model", "--bench", "Set5"])
    assert result.exit_code != 0 and "evaluation options" in str(result.exception)
    assert "bench" in str(result.exception)
