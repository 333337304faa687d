"""MATLAB-compatible bicubic: golden test against MATLAB's own output (Set5_matlab), plus the
kernel's basic properties."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasflow.spaces.dlsr.bicubic import imresize, imresize_uint8, output_size, resize_weights, to_uint8

SET5 = ["baby", "bird", "butterfly", "head", "woman"]


def _matlab_pair(shared_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    root = shared_dir / "datasets" / "Set5_matlab"
    hr = np.asarray(Image.open(root / "HR" / f"{name}.png").convert("RGB"))
    lr = np.asarray(Image.open(root / "LR_bicubic_x2" / f"{name}.png").convert("RGB"))
    return hr, lr


@pytest.mark.parametrize("name", SET5)
def test_matches_matlab_imresize_x2(shared_dir: Path, name: str) -> None:
    hr, ref = _matlab_pair(shared_dir, name)
    lr = imresize_uint8(hr, 0.5)
    assert lr.shape == ref.shape and lr.dtype == np.uint8
    diff = np.abs(lr.astype(np.int16) - ref.astype(np.int16))
    # Rounding ties in float arithmetic may differ by one level, nothing more.
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.001


def test_pil_bicubic_is_not_matlab(shared_dir: Path) -> None:
    # Why this module exists: PIL's bicubic (no 1/scale-widened kernel in the same way, other
    # border handling) misses MATLAB's LR images by several levels.
    hr, ref = _matlab_pair(shared_dir, "butterfly")
    pil = np.asarray(Image.fromarray(hr).resize((ref.shape[1], ref.shape[0]), Image.Resampling.BICUBIC))
    diff = np.abs(pil.astype(np.int16) - ref.astype(np.int16))
    assert diff.max() > 1 and (diff > 0).mean() > 0.01


def test_output_size_is_matlab_ceil() -> None:
    assert output_size(7, 0.5) == 4
    assert output_size(9, 1 / 3) == 3
    assert output_size(5, 2.5) == 13
    x = torch.rand(2, 3, 7, 9)
    assert imresize(x, 0.5).shape == (2, 3, 4, 5)
    assert imresize(x[0], 3.0).shape == (3, 21, 27)
    assert imresize(x, size=(5, 6)).shape == (2, 3, 5, 6)


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 0.75, 2.0, 3.0, 4.0])
def test_weights_rows_sum_to_one_and_constants_survive(scale: float) -> None:
    w = resize_weights(17, output_size(17, scale), scale)
    assert torch.allclose(w.sum(dim=1), torch.ones(w.shape[0], dtype=torch.float64))
    x = torch.full((3, 17, 17), 77.0, dtype=torch.float64)
    assert torch.allclose(imresize(x, scale), torch.full_like(imresize(x, scale), 77.0))


def test_scale_one_is_identity() -> None:
    x = torch.rand(3, 10, 13, dtype=torch.float64)
    assert torch.allclose(imresize(x, 1.0), x)


def test_keeps_dtype_and_matches_uint8_path() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 18, 3), dtype=np.uint8)
    t64 = torch.from_numpy(img.astype(np.float64)).permute(2, 0, 1)
    out64 = imresize(t64, 0.5)
    assert out64.dtype == torch.float64
    assert imresize(t64.float(), 0.5).dtype == torch.float32
    assert np.array_equal(to_uint8(out64.permute(1, 2, 0)), imresize_uint8(img, 0.5))
    # A grey H x W image goes through the same path.
    assert np.array_equal(imresize_uint8(img[:, :, 0], 0.5), imresize_uint8(img, 0.5)[:, :, 0])


def test_to_uint8_rounds_half_away_and_saturates() -> None:
    got = to_uint8(np.array([-3.0, 0.49, 0.5, 1.5, 2.5, 254.6, 300.0]))
    assert got.tolist() == [0, 0, 1, 2, 3, 255, 255]


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="C x H x W"):
        imresize(torch.rand(5, 5), 0.5)
    with pytest.raises(ValueError, match="scale or size"):
        imresize(torch.rand(1, 5, 5))
    with pytest.raises(ValueError, match="positive"):
        imresize(torch.rand(1, 5, 5), -1.0)
