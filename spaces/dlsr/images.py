"""Small conversions between uint8 H x W x C images and the float C x H x W tensors that the
SR models take (values in 0..255, RGB, as the released DLSR checkpoints expect)."""
from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from .bicubic import to_uint8

__all__ = ["to_tensor", "to_image", "save_rgb"]


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 H x W x C (or H x W) array -> float32 C x H x W tensor in 0..255 (a copy)."""
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"expected an H x W x C image, got shape {a.shape}")
    # ascontiguousarray: crops, flips and rot90 views have strides torch cannot adopt.
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))


def to_image(t: torch.Tensor) -> np.ndarray:
    """Float C x H x W (or 1 x C x H x W) tensor in 0..255 -> uint8 H x W x C, rounded like MATLAB."""
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"expected a C x H x W tensor, got shape {tuple(t.shape)}")
    return to_uint8(t.detach().permute(1, 2, 0))


def save_rgb(img: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Save a uint8 H x W x 3 (or H x W) image; the format follows the file's extension."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise ValueError(f"save_rgb takes uint8 images, got {a.dtype} (use to_image first)")
    Image.fromarray(a[:, :, 0] if a.ndim == 3 and a.shape[2] == 1 else a).save(os.fspath(path))
