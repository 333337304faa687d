"""Directories written before file formats carried a version (tests/fixtures/format0, made by
commit ae7715f's code) still work: a stopped search resumes exactly and derives, a stopped
training resumes exactly, and trained and imported models load and compute what they did."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from nasflow.cli.main import app
from nasflow.runs.checkpoint import load_checkpoint
from nasflow.runs.formats import FORMAT
from nasflow.runs.modeldir import load_model, model_format
from nasflow.search.run_dir import RunDir
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space

FIXTURES = Path(__file__).parent / "fixtures" / "format0"
runner = CliRunner()


def _copy(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _assert_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6, msg=k)


def test_old_search_resumes_where_it_stopped_and_derives(tmp_path):
    run = _copy(tmp_path, "search")
    _invoke("search", "--resume", "--out", str(run), "--quiet")
    tensors, state = load_checkpoint(run / "checkpoint.safetensors")
    assert state["step"] == 12
    # the old code's uninterrupted run ended with these arch tensors
    _assert_close({k: v for k, v in tensors.items() if k.startswith("arch.")},
                  load_file(FIXTURES / "expected" / "search_final.safetensors"))
    old_config = json.loads((FIXTURES / "search" / "config.json").read_text())
    assert "format" not in old_config and old_config["lambda"] == 1.0  # MiLeNAS's option, top-level then
    assert RunDir(FIXTURES / "search").config().strategy_options["lambda"] == 1.0  # read as a strategy option
    assert json.loads((run / "config.json").read_text())["format"] == FORMAT  # the run is upgraded
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert steps == list(range(0, 13, 2))
    _invoke("derive", str(run))
    derived = build_graph(load_space(run / "derived" / "arch.yaml"))
    assert derived.is_derived
    # and from the old snapshot
    _invoke("derive", str(run), "--step", "6")
    assert build_graph(load_space(run / "derived_step_6" / "arch.yaml")).is_derived


def test_old_training_resumes_where_it_stopped(tmp_path):
    run = _copy(tmp_path, "train")
    _invoke("train", "--resume", "--out", str(run), "--quiet")
    tensors, state = load_checkpoint(run / "checkpoint.safetensors")
    assert state["step"] == 10
    _assert_close({k: v for k, v in tensors.items() if k.startswith("weights.")},
                  load_file(FIXTURES / "expected" / "train_final.safetensors"))
    model, _, meta = load_model(run / "model")
    assert meta["steps"] == 10 and meta["weights"] == "final"
    want = load_file(FIXTURES / "expected" / "train_final.safetensors")
    _assert_close({f"weights.{k}": v for k, v in model.state_dict().items()}, want)


def test_old_best_model_of_a_training_loads(tmp_path):
    best = _copy(tmp_path, "train") / "best"
    model, space, meta = load_model(best)
    assert meta["best"]["step"] == 4 and meta["scale"] == 2
    weights = load_file(FIXTURES / "train" / "best" / "weights.safetensors")
    _assert_close(model.state_dict(), weights)


def test_old_imported_model_loads_and_computes_the_same(tmp_path):
    model_dir = _copy(tmp_path, "model")
    assert model_format(model_dir) == 0  # written before formats were recorded
    model, space, meta = load_model(model_dir)
    assert meta["paper_model"] == "DLSR-S" and meta["scale"] == 2 and space.name == "dlsr-s"
    io = load_file(FIXTURES / "expected" / "model_io.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(model(io["input"]), io["output"], rtol=1e-5, atol=1e-4)


def test_old_imported_model_evaluates_the_same(tmp_path):
    model_dir = _copy(tmp_path, "model")
    got = json.loads(_invoke("eval", str(model_dir), "--json", "--device", "cpu", "--backend", "plain"))["sets"]
    want = json.loads((FIXTURES / "expected" / "model_eval.json").read_text())
    assert [s["set"] for s in got] == [s["set"] for s in want]
    for g, w in zip(got, want):
        assert g["psnr"] == pytest.approx(w["psnr"], abs=1e-6) and g["ssim"] == pytest.approx(w["ssim"], abs=1e-6)
        assert [i["psnr"] for i in g["images"]] == pytest.approx([i["psnr"] for i in w["images"]], abs=1e-6)
