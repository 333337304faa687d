"""MATLAB-compatible bicubic resize (``imresize(img, scale, 'bicubic')``).

SR benchmarks make their low-resolution inputs with MATLAB's ``imresize``: a cubic kernel
(a = -0.5), widened by 1/scale when downscaling (antialiasing), mirror-symmetric borders, and
a result rounded to uint8. PIL's and torch's bicubic differ from it by several intensity levels,
which moves PSNR by hundredths of a dB, so the DLSR task uses this module for every LR image.

Resizing is separable: for each axis we build a dense (out_size x in_size) weight matrix once
(cached per (in_size, out_size, scale)) and apply the two axes as two matrix products. Border
handling is folded into the matrices (a mirrored tap adds its weight to the pixel it mirrors).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

__all__ = ["cubic", "output_size", "resize_weights", "imresize", "imresize_uint8", "to_uint8"]


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), support [-2, 2]."""
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def output_size(in_size: int, scale: float) -> int:
    """MATLAB's output length for a scale factor: ``ceil(in_size * scale)``."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return int(math.ceil(in_size * scale))


@lru_cache(maxsize=256)
def _weights_f64(in_size: int, out_size: int, scale: float, antialias: bool) -> torch.Tensor:
    # A port of the arithmetic of MATLAB's `contributions` (imresize.m), in float64.
    kernel_width = 4.0
    kernel: Callable[[torch.Tensor], torch.Tensor] = cubic
    if scale < 1 and antialias:
        # Downscaling: stretch the kernel by 1/scale so it low-passes (antialiasing).
        def kernel(t: torch.Tensor) -> torch.Tensor:
            return scale * cubic(scale * t)

        kernel_width /= scale
    x = torch.arange(1, out_size + 1, dtype=torch.float64)
    # Output pixel x (1-based) sits at input coordinate u: pixel centres of both grids align.
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    w = kernel(u[:, None] - idx)
    w = w / w.sum(dim=1, keepdim=True)
    # Symmetric border: index sequence 1..n, n..1 repeated (the edge pixel is duplicated).
    period = 2 * in_size
    m = torch.remainder(idx.long() - 1, period)
    src = torch.where(m < in_size, m, period - 1 - m)
    mat = torch.zeros(out_size, in_size, dtype=torch.float64)
    mat.scatter_add_(1, src, w)
    return mat


def resize_weights(in_size: int, out_size: int, scale: float, antialias: bool = True) -> torch.Tensor:
    """The (out_size x in_size) float64 matrix that resizes one axis as MATLAB does.

    ``scale`` is the factor the kernel is built for (MATLAB uses the requested factor, not
    out_size / in_size, when both are given). Rows sum to 1. The result is cached: do not
    modify it in place.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got in_size={in_size}, out_size={out_size}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return _weights_f64(int(in_size), int(out_size), float(scale), bool(antialias))


def imresize(
    img: torch.Tensor,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> torch.Tensor:
    """Resize a float image tensor (C x H x W or N x C x H x W) like MATLAB's bicubic imresize.

    Give ``scale`` (output size ``ceil(in * scale)`` per axis), ``size`` = (out_h, out_w), or
    both (then ``scale`` shapes the kernel and ``size`` the output, as in MATLAB). Values are
    not rounded or clamped: the result has the input's dtype and device. Integer tensors are
    computed in float32 and returned as float32.
    """
    if img.dim() not in (3, 4):
        raise ValueError(f"expected C x H x W or N x C x H x W, got shape {tuple(img.shape)}")
    if scale is None and size is None:
        raise ValueError("give scale or size")
    h, w = img.shape[-2], img.shape[-1]
    if size is None:
        assert scale is not None
        size = (output_size(h, scale), output_size(w, scale))
    out_h, out_w = int(size[0]), int(size[1])
    scale_h = scale if scale is not None else out_h / h
    scale_w = scale if scale is not None else out_w / w
    x = img if img.is_floating_point() else img.float()
    wh = resize_weights(h, out_h, scale_h, antialias).to(device=x.device, dtype=x.dtype)
    ww = resize_weights(w, out_w, scale_w, antialias).to(device=x.device, dtype=x.dtype)
    # (out_h x H) @ (.., H, W) @ (W x out_w): both axes, no rounding in between. Dense
    # products beat a banded, blocked product in practice here (measured: small batched GEMMs
    # and strided copies cost more than the skipped zeros) and stay simple.
    return wh @ x @ ww.t()


def to_uint8(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Round half away from zero and saturate to 0..255, as MATLAB's ``uint8()`` does."""
    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    # After clamping every value is >= 0, where floor(x + 0.5) is round-half-away-from-zero
    # (np.round would round ties to even, unlike MATLAB).
    out: np.ndarray = np.floor(np.clip(a, 0.0, 255.0) + 0.5).astype(np.uint8)
    return out


# Output pixels imresize_uint8 computes at a time: its float64 copies stay bounded whatever
# the image (a 12 MP image whole took ~60 bytes a pixel; nasflow eval, docs/howto/limits.md).
BAND_PIXELS = 1 << 18


def imresize_uint8(
    img: np.ndarray,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> np.ndarray:
    """MATLAB ``imresize`` of a uint8 H x W x C (or H x W) image, returning uint8 like MATLAB.

    Computed in float64, then rounded and clamped once, in bands of output rows (each reads
    only the input rows its weights touch), so memory stays bounded whatever the image.
    """
    a = np.asarray(img)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected H x W or H x W x C, got shape {a.shape}")
    if scale is None and size is None:
        raise ValueError("give scale or size")
    h, w = a.shape[0], a.shape[1]
    if size is None:
        assert scale is not None
        size = (output_size(h, scale), output_size(w, scale))
    out_h, out_w = int(size[0]), int(size[1])
    wh = resize_weights(h, out_h, scale if scale is not None else out_h / h, antialias)
    ww = resize_weights(w, out_w, scale if scale is not None else out_w / w, antialias)
    out = np.empty((out_h, out_w, *a.shape[2:]), dtype=np.uint8)
    rows = max(1, BAND_PIXELS // max(w, out_w))
    for y0 in range(0, out_h, rows):
        y1 = min(out_h, y0 + rows)
        read = wh[y0:y1].abs().sum(0).nonzero()  # the input rows these output rows weigh
        r0, r1 = int(read[0]), int(read[-1]) + 1
        t = torch.from_numpy(np.ascontiguousarray(a[r0:r1], dtype=np.float64))
        t = t[None] if a.ndim == 2 else t.permute(2, 0, 1)
        band = wh[y0:y1, r0:r1] @ t @ ww.t()
        out[y0:y1] = to_uint8(band[0] if a.ndim == 2 else band.permute(1, 2, 0))
    return out