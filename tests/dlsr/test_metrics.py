"""PSNR / SSIM with the SR literature's conventions, down to the bicubic baseline on Set5."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nasflow.spaces.dlsr.bicubic import imresize, imresize_uint8
from nasflow.spaces.dlsr.data import load_rgb
from nasflow.spaces.dlsr.metrics import mod_crop, psnr, quantize, rgb_to_y, shave, ssim


def _random_image(h: int = 40, w: int = 36, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(10, 200, (h, w, 3), dtype=np.uint8)


def test_identical_images() -> None:
    img = _random_image()
    assert psnr(img, img, crop_border=2) == math.inf
    assert ssim(img, img, crop_border=2) == pytest.approx(1.0, abs=1e-12)
    t = torch.from_numpy(img).permute(2, 0, 1).float()
    assert psnr(t, img, crop_border=0, y_only=False) == math.inf
    assert ssim(t, img, crop_border=0, y_only=False) == pytest.approx(1.0, abs=1e-12)


def test_psnr_of_a_constant_offset() -> None:
    hr = _random_image()
    sr = hr + np.uint8(5)
    # Y moves by 5 * (65.738 + 129.057 + 25.064) / 256 = 4.29412... on every pixel.
    dy = 5 * (65.738 + 129.057 + 25.064) / 256
    assert psnr(sr, hr, crop_border=4) == pytest.approx(20 * math.log10(255 / dy), abs=1e-9)
    assert psnr(sr, hr, crop_border=4) == pytest.approx(35.4733, abs=1e-4)
    assert psnr(sr, hr, crop_border=4, y_only=False) == pytest.approx(20 * math.log10(255 / 5), abs=1e-9)


def test_output_is_rounded_and_clamped_first() -> None:
    hr = _random_image()
    t = torch.from_numpy(hr).permute(2, 0, 1).double()
    # +0.4 rounds away, and values above 255 clip back to 255 on a white target.
    assert psnr(t + 0.4, hr, crop_border=0) == math.inf
    white = np.full((16, 16, 3), 255, np.uint8)
    assert psnr(torch.full((3, 16, 16), 300.0), white, crop_border=0) == math.inf
    assert quantize(torch.tensor([-1.0, 0.5, 1.5, 2.5, 254.7, 256.0])).tolist() == [0, 1, 2, 3, 255, 255]
    assert quantize(np.array([2.5, -7.0])).tolist() == [3.0, 0.0]


def test_numpy_and_torch_layouts_agree() -> None:
    hr = _random_image(seed=1)
    sr = _random_image(seed=2)
    t_sr = torch.from_numpy(sr).permute(2, 0, 1).float()
    assert psnr(t_sr, hr, 2) == pytest.approx(psnr(sr, hr, 2), abs=1e-12)
    assert ssim(t_sr[None], hr, 2) == pytest.approx(ssim(sr, hr, 2), abs=1e-12)
    assert 0.0 < ssim(sr, hr, 2) < 1.0
    assert ssim(sr, hr, 2) == pytest.approx(ssim(hr, sr, 2), abs=1e-12)


def test_rgb_to_y_range() -> None:
    black = np.zeros((2, 2, 3), np.uint8)
    white = np.full((2, 2, 3), 255, np.uint8)
    assert rgb_to_y(black) == pytest.approx(np.full((2, 2), 16.0))
    assert rgb_to_y(white) == pytest.approx(np.full((2, 2), 16.0 + 255 * 219.859 / 256))
    grey = np.full((3, 3), 100, np.uint8)
    assert rgb_to_y(grey) == pytest.approx(np.full((3, 3), 100.0))


def test_mod_crop_and_shave() -> None:
    a = np.zeros((13, 10, 3), np.uint8)
    assert mod_crop(a, 4).shape == (12, 8, 3)
    assert mod_crop(torch.zeros(2, 3, 13, 10), 3).shape == (2, 3, 12, 9)
    assert shave(a, 2).shape == (9, 6, 3)
    assert shave(torch.zeros(3, 13, 10), 2).shape == (3, 9, 6)
    assert shave(a, 0).shape == a.shape


def test_errors_name_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"differ in shape"):
        psnr(_random_image(20, 20), _random_image(20, 22), 0)
    with pytest.raises(ValueError, match="11 x 11"):
        ssim(_random_image(20, 20), _random_image(20, 20), 5)
    with pytest.raises(ValueError, match="one image"):
        psnr(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8), 0)


def test_bicubic_baseline_set5_x2(shared_dir: Path) -> None:
    # The literature's bicubic row for Set5 x2 is 33.66 dB (the DLSR paper's Table III); with
    # MATLAB-style bicubic both ways and the Y / shave-2 convention it is 33.68.
    scores = []
    for name in ["baby", "bird", "butterfly", "head", "woman"]:
        hr = mod_crop(load_rgb(shared_dir / "datasets" / "Set5" / f"{name}.png"), 2)
        lr = imresize_uint8(hr, 0.5)
        sr = imresize(torch.from_numpy(lr).permute(2, 0, 1).float(), 2.0)
        scores.append(psnr(sr, hr, crop_border=2))
    assert 33.66 <= float(np.mean(scores)) <= 33.69


def test_separable_ssim_window_equals_the_2d_gaussian() -> None:
    """The row-then-column filter is the 11x11 window of the reference (fspecial sigma 1.5)."""
    from nasflow.spaces.dlsr.evaluate import default_bench
    from nasflow.spaces.dlsr.metrics import _gaussian_filter, _gaussian_taps

    y = torch.from_numpy(load_rgb(default_bench() / "bird.png")[:64, :80, 1].astype(np.float64))[None, None]
    r = torch.arange(11, dtype=torch.float64) - 5.0
    window = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    window = (window / window.sum())[None, None]
    assert torch.allclose(_gaussian_filter(y), torch.nn.functional.conv2d(y, window), rtol=0, atol=1e-9)
    assert float(_gaussian_taps().sum()) == pytest.approx(1.0, abs=1e-15)
