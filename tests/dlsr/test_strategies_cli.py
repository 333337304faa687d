"""`nasflow search spaces/dlsr/space.yaml --strategy X` runs with the quick preset and
derives, at a tiny size, for every gradient strategy (spos, which evolves, has its own test)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasflow.spaces.dlsr.task import default_data

SPACE = Path(__file__).resolve().parents[2] / "spaces" / "dlsr" / "space.yaml"


@pytest.mark.parametrize("strategy", ["milenas", "darts", "darts2", "gdas", "pcdarts", "drnas"])
def test_search_and_derive_on_dlsr(strategy: str, tmp_path: Path) -> None:
    from nasflow.cli.main import app

    images = tmp_path / "t91"
    images.mkdir()
    for name in ("000t20.png", "000t12.png"):
        shutil.copy(default_data() / name, images / name)
    run = tmp_path / "run"
    argv = ["search", str(SPACE), "--strategy", strategy, "--steps", "3", "--warmup", "1", "--batch", "2",
            "--set", "channels=8", "--quiet", "--device", "cpu", "--task-opt", f"data={images}",
            "--task-opt", f"cache={tmp_path / 'cache'}", "--out", str(run)]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output
    assert "preset quick of task sr" in res.output
    derived = CliRunner().invoke(app, ["derive", str(run)])
    assert derived.exit_code == 0, derived.output
    assert (run / "derived" / "arch.yaml").is_file() and "cell6_in<-" in derived.output


def test_spos_search_evolves_and_derives_its_choice_on_dlsr(tmp_path: Path) -> None:
    import json

    from nasflow.cli.main import app

    images = tmp_path / "t91"
    images.mkdir()
    for name in ("000t20.png", "000t12.png"):
        shutil.copy(default_data() / name, images / name)
    run = tmp_path / "run"
    argv = ["search", str(SPACE), "--strategy", "spos", "--steps", "3", "--warmup", "1", "--batch", "2",
            "--strategy-opt", "population=3", "--strategy-opt", "generations=2",
            "--set", "channels=8", "--quiet", "--device", "cpu", "--task-opt", f"data={images}",
            "--task-opt", f"cache={tmp_path / 'cache'}", "--task-opt", "ssim=false", "--out", str(run)]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output
    assert "preset quick of task sr" in res.output and "SPOS best: psnr" in res.output
    assert "genotype chosen by spos after step 3" in res.output
    evo = json.loads((run / "spos" / "evolution.json").read_text())
    assert evo["metric"] == "psnr" and evo["higher_is_better"] and len(evo["scored"]) == 6
    derived = CliRunner().invoke(app, ["derive", str(run)])
    assert derived.exit_code == 0, derived.output
    assert json.loads((run / "derived" / "genotype.json").read_text()) == evo["best"]["genotype"]
