"""SR evaluation metrics with the conventions of the SR literature (MATLAB / BasicSR).

PSNR and SSIM are measured on the Y channel of YCbCr (ITU-R BT.601, studio range), after the
network output is rounded to integers and clamped to 0..255, with ``crop_border`` pixels
shaved from every side. SSIM uses an 11x11 Gaussian window (sigma 1.5) over the valid region
only, K1 = 0.01, K2 = 0.03, L = 255, in float64.

Images may be numpy arrays laid out H x W x C (or H x W), usually uint8, or torch tensors laid
out C x H x W (or 1 x C x H x W, or H x W) holding values in 0..255. Channels are RGB.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterator, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ImageLike", "quantize", "rgb_to_y", "mod_crop", "shave", "psnr", "ssim"]

ImageLike = np.ndarray | torch.Tensor
_I = TypeVar("_I", np.ndarray, torch.Tensor)


def quantize(x: _I) -> _I:
    """Round to integers (half away from zero, as MATLAB) and clamp to 0..255.

    Keeps the type: a numpy array stays numpy (float64 unless it was already uint8), a tensor
    stays a tensor of its dtype and device. This is what saving the output as uint8 does.
    """
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            return x.clamp(0, 255)
        return torch.floor(x.clamp(0.0, 255.0) + 0.5)
    a = np.asarray(x)
    if a.dtype == np.uint8:
        return a
    return np.floor(np.clip(a.astype(np.float64), 0.0, 255.0) + 0.5)


def _quantize_any(x: ImageLike) -> ImageLike:
    # quantize() is generic over one type; a union needs the dispatch spelled out for mypy.
    return quantize(x) if isinstance(x, torch.Tensor) else quantize(np.asarray(x))


def _to_chw64(img: ImageLike) -> torch.Tensor:
    """Any accepted layout -> float64 C x H x W tensor on the CPU."""
    if isinstance(img, torch.Tensor):
        t = img.detach().to("cpu", torch.float64)
        if t.dim() == 4:
            if t.shape[0] != 1:
                raise ValueError(f"metrics take one image, got a batch of shape {tuple(t.shape)}")
            t = t[0]
        if t.dim() == 2:
            t = t[None]
        if t.dim() != 3:
            raise ValueError(f"expected a C x H x W tensor, got shape {tuple(t.shape)}")
        return t
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"expected an H x W x C array, got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).permute(2, 0, 1)


def rgb_to_y(img: ImageLike) -> np.ndarray:
    """Luma of an RGB image on 0..255: Y = (65.738 R + 129.057 G + 25.064 B) / 256 + 16.

    Returns a float64 H x W array, not rounded. A one-channel image is returned as is (grey
    is its own Y for the purpose of these metrics).
    """
    t = _to_chw64(img)
    if t.shape[0] == 1:
        return t[0].numpy()
    if t.shape[0] != 3:
        raise ValueError(f"expected 1 or 3 channels, got {t.shape[0]}")
    r, g, b = t[0], t[1], t[2]
    return ((65.738 * r + 129.057 * g + 25.064 * b) / 256.0 + 16.0).numpy()


def mod_crop(img: _I, scale: int) -> _I:
    """Crop the bottom / right so height and width are multiples of ``scale``.

    numpy arrays are H x W (x C); tensors are (..., H, W). HR images are mod-cropped before
    LR images are made from them, so that HR = scale x LR exactly.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if isinstance(img, torch.Tensor):
        h, w = img.shape[-2], img.shape[-1]
        return img[..., : h - h % scale, : w - w % scale]
    h, w = img.shape[0], img.shape[1]
    return img[: h - h % scale, : w - w % scale]


def shave(img: _I, border: int) -> _I:
    """Remove ``border`` pixels from every side (numpy: H x W (x C); tensors: (..., H, W))."""
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border == 0:
        return img
    if isinstance(img, torch.Tensor):
        return img[..., border:-border, border:-border]
    return img[border:-border, border:-border]


def _prepare(sr: ImageLike, hr: ImageLike, crop_border: int, y_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Quantize both images, take Y (or all channels), shave: float64 C x H x W arrays."""
    a = _to_chw64(_quantize_any(sr))
    b = _to_chw64(_quantize_any(hr))
    if a.shape != b.shape:
        raise ValueError(f"sr and hr differ in shape: {tuple(a.shape)} vs {tuple(b.shape)} (C x H x W)")
    if y_only:
        ya, yb = rgb_to_y(a)[None], rgb_to_y(b)[None]
    else:
        ya, yb = a.numpy(), b.numpy()
    ya, yb = shave(ya.transpose(1, 2, 0), crop_border), shave(yb.transpose(1, 2, 0), crop_border)
    if ya.shape[0] == 0 or ya.shape[1] == 0:
        raise ValueError(f"crop_border={crop_border} leaves nothing of an image of shape {tuple(a.shape)}")
    return ya.transpose(2, 0, 1), yb.transpose(2, 0, 1)


# Pixels of the image the metrics convert at a time: the float64 copies, and SSIM's
# convolutions, whose unfolding takes 11x a map (a 2 MP image's SSIM took 940 MB whole), stay
# bounded whatever the image (nasflow eval --tile-memory, docs/howto/limits.md).
BAND_PIXELS = 1 << 17


def _rows(img: ImageLike, y0: int, y1: int) -> ImageLike:
    """Rows y0:y1 of an image in any accepted layout (a view)."""
    if isinstance(img, torch.Tensor):
        return img[..., y0:y1, :]
    return np.asarray(img)[y0:y1]


def _bands(sr: ImageLike, hr: ImageLike, crop_border: int, y_only: bool,
           context: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """_prepare's float64 C x h x W arrays for successive bands of rows of the shaved images,
    each with `context` more rows below it (shared with the next band); the whole image's
    arrays never exist at once."""
    a, b = _to_chw64(_quantize_any(_rows(sr, 0, 1))), _to_chw64(_quantize_any(_rows(hr, 0, 1)))
    height = sr.shape[-2] if isinstance(sr, torch.Tensor) else np.asarray(sr).shape[0]
    other = hr.shape[-2] if isinstance(hr, torch.Tensor) else np.asarray(hr).shape[0]
    shape_a, shape_b = (a.shape[0], height, a.shape[2]), (b.shape[0], other, b.shape[2])
    if shape_a != shape_b:
        raise ValueError(f"sr and hr differ in shape: {shape_a} vs {shape_b} (C x H x W)")
    c, h, w = shape_a
    if h - 2 * crop_border <= 0 or w - 2 * crop_border <= 0:
        raise ValueError(f"crop_border={crop_border} leaves nothing of an image of shape {shape_a}")
    rows = max(1, BAND_PIXELS // w)
    top, bottom = crop_border, h - crop_border
    for y in range(top, max(bottom - context, top + 1), rows):
        end = min(bottom, y + rows + context)
        ya, yb = _prepare(_rows(sr, y, end), _rows(hr, y, end), 0, y_only)
        yield ya[:, :, crop_border:w - crop_border], yb[:, :, crop_border:w - crop_border]


def psnr(sr: ImageLike, hr: ImageLike, crop_border: int, y_only: bool = True) -> float:
    """PSNR in dB between an output and its ground truth (peak 255); ``inf`` when identical.

    ``sr`` is rounded and clamped to 0..255 first. With ``y_only`` the Y channel is compared,
    otherwise all channels together. Computed band by band (BAND_PIXELS).
    """
    total, count = 0.0, 0
    for a, b in _bands(sr, hr, crop_border, y_only):
        total += float(np.sum((a - b) ** 2))
        count += a.size
    mse = total / count
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0 * 255.0 / mse)


@lru_cache(maxsize=1)
def _gaussian_taps() -> torch.Tensor:
    # 11 taps, sigma 1.5, normalised to sum 1 (as MATLAB's fspecial / OpenCV's kernel).
    r = torch.arange(11, dtype=torch.float64) - 5.0
    g = torch.exp(-(r * r) / (2.0 * 1.5 * 1.5))
    return g / g.sum()


def _gaussian_filter(maps: torch.Tensor) -> torch.Tensor:
    """The 11x11 Gaussian over N x 1 x H x W maps, valid region only. The window is the outer
    product of the taps, so a row pass then a column pass gives it at 22 instead of 121
    multiply-adds per pixel (equal to the 2-D filter to float64 rounding)."""
    g = _gaussian_taps()
    return F.conv2d(F.conv2d(maps, g.view(1, 1, 1, 11)), g.view(1, 1, 11, 1))


def _ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The SSIM map of two float64 H x W images on 0..255 (valid-region filtering)."""
    c1 = (0.01 * 255.0) ** 2
    c2 = (0.03 * 255.0) ** 2
    # No padding: statistics only where the whole window fits ("valid"), as the reference.
    # The five local means are filtered in one batch.
    mu_x, mu_y, exx, eyy, exy = _gaussian_filter(torch.stack([a, b, a * a, b * b, a * b])[:, None])
    sxx = exx - mu_x * mu_x
    syy = eyy - mu_y * mu_y
    sxy = exy - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2)
    return num / den


def ssim(sr: ImageLike, hr: ImageLike, crop_border: int, y_only: bool = True) -> float:
    """SSIM between an output and its ground truth; 1.0 when identical.

    ``sr`` is rounded and clamped to 0..255 first. With ``y_only`` the Y channel is compared,
    otherwise the mean of the per-channel SSIMs. Needs at least 11 x 11 pixels after shaving.
    """
    totals: np.ndarray | None = None
    count, height, width = 0, 0, 0
    # Bands overlap by 10 rows, so each map row is computed once, from its whole window.
    for a, b in _bands(sr, hr, crop_border, y_only, context=10):
        width = a.shape[2]
        if a.shape[1] < 11 or width < 11:
            height = max(height, a.shape[1])
            break
        ta, tb = torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(np.ascontiguousarray(b))
        sums = np.array([float(_ssim_map(ta[c], tb[c]).sum()) for c in range(ta.shape[0])])
        totals = sums if totals is None else totals + sums
        count += (a.shape[1] - 10) * (width - 10)
    if totals is None:
        raise ValueError(f"SSIM needs at least 11 x 11 pixels after shaving, got {height} x {width}")
    return float(np.mean(totals / count))
