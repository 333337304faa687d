"""`nasflow search spaces/darts/space.yaml --strategy X` runs with the quick preset and
derives, tiny, for every gradient strategy (spos: tests/darts/test_spos_cli.py), and the
derived cells never hold `none`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasflow.cli.main import app

SPACE = Path(__file__).resolve().parents[2] / "spaces" / "darts" / "space.yaml"


@pytest.mark.parametrize("strategy", ["milenas", "darts", "darts2", "gdas", "pcdarts", "drnas"])
def test_search_and_derive_on_the_darts_space(strategy: str, tmp_path: Path) -> None:
    run = tmp_path / "s"
    res = CliRunner().invoke(app, [
        "search", str(SPACE), "--strategy", strategy, "--out", str(run), "--steps", "3", "--warmup", "1",
        "--batch", "4", "--set", "C=4", "--set", "layers=3", "--task-opt", "test_samples=20",
        "--levers", "given", "-q"])
    assert res.exit_code == 0, res.output
    assert "preset quick of task classify" in res.output
    derived = CliRunner().invoke(app, ["derive", str(run), "--set", "layers=5"])
    assert derived.exit_code == 0, derived.output
    genotype = json.loads((run / "derived" / "genotype.json").read_text())
    assert genotype["choices"] and "darts_none" not in genotype["choices"].values()
    assert "layers: 5" in (run / "derived" / "arch.yaml").read_text()
