"""`nasflow train` on DLSR end to end, tiny: channels 4, small patches, a few steps on three of
the shipped training images. The model directory it writes is one `nasflow eval` scores (the
same PSNR as the run's own validation), and an x3 run warm-started from it loads every tensor
but the upsampler's last conv, which it names."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from nasflow.cli.main import app
from nasflow.spaces.dlsr.task import default_data
from typer.testing import CliRunner

from nasflow.runs.modeldir import load_model
from nasflow.train.config import TrainConfig

runner = CliRunner()
DLSR = Path(__file__).resolve().parents[2] / "spaces" / "dlsr" / "dlsr.yaml"


@pytest.fixture
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NASFLOW_CACHE", str(tmp_path / "cache"))  # LR cache: not in the home folder
    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted(default_data().glob("*.png"))[:3]:  # real images, few: data prep stays fast
        shutil.copy(path, folder / path.name)
    return folder


def _train(args: list[str]) -> str:
    res = runner.invoke(app, ["train", *args, "--set", "channels=4", "--device", "cpu", "--quiet",
                              "--task-opt", "ssim=false"])
    assert res.exit_code == 0, res.output
    return res.output


def test_train_x2_then_eval_then_warm_start_x3(tmp_path: Path, images: Path) -> None:
    x2 = tmp_path / "x2"
    out = _train([str(DLSR), "--data", str(images), "--steps", "3", "--batch", "2",
                  "--task-opt", "patch=32", "--out", str(x2)])
    assert "final psnr" in out and str(x2 / "model") in out.replace("\n", "")
    # the quick preset of the SR task applied below the explicit flags
    config = TrainConfig.model_validate_json((x2 / "config.json").read_text())
    from nasflow.spaces.dlsr.presets import PRESETS

    quick = PRESETS["quick"]["train"]
    assert config.steps == 3 and config.batch_size == 2
    assert config.schedule == quick["schedule"] and config.optim.lr == quick["lr"]
    assert config.task_options == {"patch": 32, "data": str(images), "ssim": False}
    model, space, meta = load_model(x2 / "model")
    assert space.params == {"channels": 4, "scale": 2} and meta["scale"] == 2 and meta["steps"] == 3
    assert sum(p.numel() for p in model.parameters()) == 6_150

    scored = runner.invoke(app, ["eval", str(x2 / "model"), "--json", "--device", "cpu"])
    assert scored.exit_code == 0, scored.output
    result = json.loads(scored.output)
    assert result["scale"] == 2 and result["params"] == 6_150
    assert result["sets"][0]["psnr"] == pytest.approx(meta["valid"]["psnr"], abs=1e-6)

    x3 = tmp_path / "x3"
    out = _train([str(DLSR), "--scale", "3", "--init-from", str(x2 / "model"), "--data", str(images),
                  "--steps", "1", "--batch", "2", "--task-opt", "patch=48", "--out", str(x3)])
    assert "skipped up_conv.op.weight: shape (12, 4, 3, 3), this architecture has (27, 4, 3, 3)" in out
    assert "skipped up_conv.op.bias: shape (12,), this architecture has (27,)" in out
    model3, space3, meta3 = load_model(x3 / "model")
    assert space3.params["scale"] == 3 and meta3["init_from"]["source"] == str(x2 / "model")
    assert meta3["init_from"]["fresh"] == ["up_conv.op.weight", "up_conv.op.bias"]
    assert meta3["init_from"]["loaded"] == len(model3.state_dict()) - 2
    assert model3.state_dict()["up_conv.op.weight"].shape == (27, 4, 3, 3)


def test_paper_preset_is_the_papers_retraining() -> None:
    from nasflow.tasks.presets import preset_section
    from nasflow.train.config import preset_changes

    used, settings = preset_section("sr", "paper", "train")
    config = TrainConfig.build(preset_changes(used, settings))
    assert (config.steps, config.batch_size, config.lr_halve_every) == (2_000_000, 32, 400_000)
    assert config.optim.lr == 3e-4 and config.optim.betas == (0.9, 0.999)
    assert config.task_options["lr_patch"] == 64  # HR 128 / 192 / 256 at x2 / x3 / x4
    assert [config.lr_at(s) for s in (399_999, 400_000, 1_999_999)] == [3e-4, 1.5e-4, 3e-4 / 16]
