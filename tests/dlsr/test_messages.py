"""Messages that say what happened (issue 15): a missing checkpoint, an unsafe pickle, an
image too small for its scale, a model directory already there, a negative --overlap."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from nasflow.cli.main import app
from nasflow.spaces.dlsr.data import DataError, SRPatchDataset
from nasflow.spaces.dlsr.importer import HERE, RELEASED, import_checkpoint, read_checkpoint
from nasflow.spaces.dlsr.task import split_images
from PIL import Image
from typer.testing import CliRunner

from nasflow.errors import CheckpointError, NasflowWarning

runner = CliRunner()
SMALL = "RFDN_beta21_tiny18_ps128_20210306_lr4_700.pt"  # DLSR-S: the quickest to import


class _NotATensor:
    pass


def _images(folder: Path, sizes: dict[str, tuple[int, int]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, (w, h) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
    return sorted(folder / name for name in sizes)


def test_a_missing_checkpoint_is_said_to_be_missing(tmp_path):
    result = runner.invoke(app, ["import", str(tmp_path / "absent.pt"), "-o", str(tmp_path / "m")])
    assert result.exit_code != 0
    assert "does not exist" in str(result.exception) and "knows" not in str(result.exception)


def test_an_unsafe_pickle_is_refused_as_unsafe(tmp_path):
    path = tmp_path / "objects.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": _NotATensor()}, path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    text = str(info.value)
    assert "refused as unsafe" in text and "_NotATensor" in text
    assert "truncated" not in text and "weights_only" not in text


def test_an_image_smaller_than_the_scale_is_skipped_with_its_real_size(tmp_path):
    paths = _images(tmp_path / "d", {"big.png": (40, 36), "dot.png": (1, 1)})
    with pytest.warns(NasflowWarning, match=r"skipped 1 image.*dot\.png \(1 x 1\)"):
        ds = SRPatchDataset(paths, 2, 16, skip_small=True)
    assert ds.paths == [paths[0]] and "0 x 0" not in ds.skipped[0]
    with pytest.raises(DataError, match=r"dot\.png \(1 x 1\)"):  # without skip_small: refused
        SRPatchDataset(paths, 2, 16)
    with pytest.raises(DataError, match=r"every image is smaller.*dot\.png \(1 x 1\)"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing to warn about: it is refused
            SRPatchDataset([paths[1]], 2, 16, skip_small=True)


def test_too_few_images_names_no_command(tmp_path):
    paths = _images(tmp_path / "d", {"one.png": (40, 40)})
    with pytest.raises(DataError) as info:
        split_images(paths, tmp_path / "d", 0.1)
    assert "search" not in str(info.value) and "valid_data" in str(info.value)


def test_cli_skips_a_tiny_image_with_one_warning_line(tmp_path, capsys):
    """Training through the CLI says once which image was skipped and why (search and train
    read data through the same task, so they share the policy)."""
    from nasflow.cli.app import run

    _images(tmp_path / "d", {f"i{k}.png": (48, 48) for k in range(3)} | {"dot.png": (1, 1)})
    with pytest.raises(SystemExit) as info:
        run(["train", str(HERE / "dlsr.yaml"), "--data", str(tmp_path / "d"), "--steps", "1", "--batch", "2",
             "--set", "channels=4", "--task-opt", "patch=32", "--validate-every", "1000", "-q",
             "-o", str(tmp_path / "run"), "--task-opt", f"cache={tmp_path / 'cache'}"])
    err = capsys.readouterr().err
    assert info.value.code in (0, None), err
    assert "warning: skipped 1 image(s) smaller than the HR patch 32" in err and "dot.png (1 x 1)" in err


def test_import_refuses_an_existing_model_without_force(shared_dir, tmp_path):
    ckpt = shared_dir / "weights" / "dlsr" / SMALL
    arch = HERE / RELEASED[SMALL].arch
    out = import_checkpoint(ckpt, arch, tmp_path / "m")
    before = (out / "weights.safetensors").stat().st_mtime_ns
    result = runner.invoke(app, ["import", str(ckpt), "-o", str(out)])
    assert result.exit_code != 0 and "already holds a model" in str(result.exception)
    assert "--force" in str(result.exception)
    assert (out / "weights.safetensors").stat().st_mtime_ns == before
    result = runner.invoke(app, ["import", str(ckpt), "-o", str(out), "--force"])
    assert result.exit_code == 0, result.output
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine\n")
    with pytest.raises(CheckpointError, match="folder of other files"):
        import_checkpoint(ckpt, arch, other, force=True)
    assert sorted(p.name for p in other.iterdir()) == ["todo.txt"]


def test_upscale_refuses_a_negative_overlap_by_its_flag(tmp_path):
    result = runner.invoke(app, ["upscale", str(tmp_path / "m"), str(tmp_path / "a.png"), "-o",
                                 str(tmp_path / "o"), "--overlap", "-1"])
    assert result.exit_code == 2 and "--overlap" in result.output
