"""`nasflow search spaces/darts/space.yaml --strategy spos` with the quick preset, tiny:
single-path supernet training, the evolution scored on top-1 with BatchNorm recalibrated,
and `nasflow derive RUN` derives the evolution's pick."""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from nasflow.cli.main import app

SPACE = Path(__file__).resolve().parents[2] / "spaces" / "darts" / "space.yaml"


def test_spos_on_the_darts_space(tmp_path):
    run = tmp_path / "s"
    res = CliRunner().invoke(app, [
        "search", str(SPACE), "--strategy", "spos", "--out", str(run), "--steps", "3", "--warmup", "1",
        "--batch", "4", "--set", "C=2", "--task-opt", "test_samples=20", "--strategy-opt", "population=3",
        "--strategy-opt", "generations=2", "--strategy-opt", "bn_batches=1", "--levers", "given", "-q"])
    assert res.exit_code == 0, res.output
    assert "preset quick of task classify" in res.output and "SPOS best: top1" in res.output
    evo = json.loads((run / "spos" / "evolution.json").read_text())
    assert evo["metric"] == "top1" and evo["higher_is_better"] and len(evo["scored"]) == 6
    for s in evo["scored"]:  # never the space's never_derive op
        assert "darts_none" not in s["genotype"]["choices"].values()
    derived = CliRunner().invoke(app, ["derive", str(run)])
    assert derived.exit_code == 0, derived.output
    assert json.loads((run / "derived" / "genotype.json").read_text()) == evo["best"]["genotype"]
