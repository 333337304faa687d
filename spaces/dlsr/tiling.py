"""Tiled upscaling: any image size in bounded memory, with the untiled result's quality.

The LR image is cut into overlapping tiles; each is upscaled alone; each output pixel is
taken from the one tile whose core holds it, where it is at least `overlap` LR pixels from
every tile border that is not an image border. For a network of convolutions alone that is
exact once the overlap covers the receptive field. DLSR's ESA is not local: it pools to about
1/6 of the input and resizes the attention back to the input's size, so its sampling grid
depends on the tile's size and the tiled output differs slightly everywhere, not only at the
seams. Measured with the released DLSR weights on Set14 x2 (PSNR tiled - untiled):

    tile 96,  overlap 16 / 24 / 32:  comic -0.0003 / +0.0014 / +0.0030 dB
    tile 128, overlap 8 / 16 / 32:   monarch -0.020 / -0.020 / -0.018, zebra -0.007 / +0.006 / +0.001
    tile 256, overlap 8 / 16 / 32 / 48:  monarch -0.0055 / -0.0033 / +0.0045 / +0.0031,
                                         zebra -0.0038 / -0.0037 / -0.0024 / -0.0025
    without overlap (tile 96): comic -0.12 dB (visible seams)

So the tile matters more than the overlap past 16; tiles under ~200 px can miss 0.01 dB.
Measured again (issue 15 leftover, released weights, eager; tiled - untiled):

    Set14 at tile 256, overlap 8 / 16 / 32:  monarch +0.012 / +0.008 / +0.012,
        zebra -0.006 / -0.005 / -0.005, barbara -0.008 / -0.055 / -0.072, ppt3 -0.012 / +0.006 / -0.023
    a 720x480 LR mosaic of six Set14 crops, tile 463 (onnx's default for DLSR C48),
        overlap 8 / 12 / 16 / 32:  -0.008 / -0.016 / -0.047 / +0.0006 (max |diff| 21 / 29 / 37 / 20 levels)

So 0.005 dB is not a bound at 256 px tiles (barbara), and a smaller overlap than 32 is not
safe even at 463 px: the default overlap stays 32. Nearly all the speed a tiled image loses is
that overlap's recompute (bench/upscale_tiles.py: DLSR C48, onnx, 2000x1500 LR at the 1 GiB
budget's 463 px tile computes 1.43x the image's pixels and runs at 0.65-0.71 of an untiled
640x360 image; one tile call alone runs at 1.02-1.06 of it, the tiling's own work is ~1%).
But one call on a whole large image is itself slower per pixel than on 640x360: against it,
the budget's tiles run at untiled speed (C48, 1200x900 LR: 30.8 vs 30.4 G Multi-Adds/s in
one call, which took ~6 GB; the quick preset's C16 model, 2000x1500: 14.1 vs 16.3). Aligning tile origins to 6 px
(ESA's stride 2 x 3) halves the largest pixel differences at tile 96 (max |diff| 4.5 vs 8.4
levels at overlap 32).

`predict` is any callable from an LR tensor (1 x 3 x h x w, 0..255) to its SR tensor
(1 x 3 x h*s x w*s): a model (model_predictor), or a faster inference backend.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from nasflow.deploy.memory import (DEFAULT_TILE_MEMORY_MIB, RUNTIME_SLACK, activation_bytes_per_pixel,  # noqa: F401
                                   tile_for_memory)
from nasflow.errors import NasflowError

from .images import save_rgb, to_image, to_tensor
from .png_stream import PngStream

__all__ = ["DEFAULT_OVERLAP", "DEFAULT_TILE", "DEFAULT_TILE_MEMORY", "Predict", "activation_bytes_per_pixel",
           "tile_for_memory", "model_predictor", "tile_spans", "upscale_bands",
           "upscale_file", "upscale_image", "upscale_tiled"]

Predict = Callable[[Tensor], Tensor]
DEFAULT_TILE = 256  # LR pixels: a x2 DLSR tile needs well under 1 GB on a CPU
DEFAULT_OVERLAP = 32  # LR pixels; measured (module docstring): 16 is as good, 8 is not
# Tile origins fall on multiples of this many LR pixels: ESA's stride-2 conv and stride-3
# max-pool then see the same sampling grid as on the whole image.
DEFAULT_ALIGN = 6


DEFAULT_TILE_MEMORY = DEFAULT_TILE_MEMORY_MIB << 20  # bytes of activations a tile may take (--tile-memory)


def model_predictor(model: nn.Module, backend: str = "eager", dtype: str = "fp32") -> Predict:
    """`model` as a Predict through nasflow.deploy.predictor (eval mode, no autograd, channels-last
    on the CPU; "onnx" / "compile" for the fast backends)."""
    from nasflow.deploy.predictor import Predictor

    return Predictor(model, backend, dtype)


def tile_spans(size: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int, int, int]]:
    """(in_start, in_end, core_start, core_end) per tile along one axis of `size` pixels.

    The cores partition 0..size; each tile reads its core plus at least `overlap` pixels on
    each side (less at the image border) and the same number of pixels, at most `tile` (no more
    than the largest core and its margins need), so every tile of an image has one shape: the eager backend's oneDNN keeps kernels and buffers per
    input shape, and its memory grew with each new one (issue 15). Tile origins are multiples
    of `align` wherever the image border allows it.
    """
    if size <= tile:
        return [(0, size, 0, size)]
    # Room for the core once both overlaps and the alignment slack are taken off.
    core = tile - 2 * overlap - (align - 1)
    if core < 1:
        raise NasflowError(f"tile {tile} leaves no room for the overlap {overlap} on both sides "
                           f"(align {align}): use a tile larger than {2 * overlap + align - 1}")
    n = -(-size // core)
    cuts = [round(i * size / n) for i in range(n + 1)]  # balanced cores
    # Read no more than the largest core needs: a tile far larger than its core recomputes
    # the excess (2000 px in 2 tiles of 1214 read 1.2x the pixels per axis, not 1.07x).
    tile = min(tile, max(b - a for a, b in zip(cuts, cuts[1:])) + 2 * overlap + align - 1)
    spans = []
    for cs, ce in zip(cuts[:-1], cuts[1:]):
        start = max(0, cs - overlap) // align * align
        end = min(size, start + tile)  # >= ce + overlap: `core` left room for it
        start = end - tile  # moves only at the far end (then unaligned)
        spans.append((start, end, cs, ce))
    return spans


def _check(scale: int, tile: int, overlap: int, align: int) -> None:
    if scale < 1:
        raise NasflowError(f"scale must be a positive integer, got {scale}")
    if overlap < 0 or align < 1:
        raise NasflowError(f"overlap must be >= 0 and align >= 1, got overlap {overlap}, align {align}")
    if tile <= 2 * overlap:
        raise NasflowError(f"tile {tile} must be larger than twice the overlap {overlap}: "
                           f"e.g. --tile {max(4 * overlap, 64)} --overlap {overlap}")


def _cores(predict: Predict, read: Callable[[int, int, int, int], Tensor], h: int, w: int, scale: int,
           tile: int, overlap: int, align: int, progress: Callable[[int, int], None] | None,
           ) -> Iterator[tuple[int, int, int, int, Tensor]]:
    """(y0, y1, x0, x1, SR core) per tile, row of tiles by row of tiles, left to right: the
    core's output pixels are [y0:y1, x0:x1] * scale. `read(ys, ye, xs, xe)` gives the LR tile."""
    rows, cols = tile_spans(h, tile, overlap, align), tile_spans(w, tile, overlap, align)
    done, total, s = 0, len(rows) * len(cols), scale
    for ys, ye, ycs, yce in rows:
        for xs, xe, xcs, xce in cols:
            sr = predict(read(ys, ye, xs, xe))
            want = (1, (ye - ys) * s, (xe - xs) * s)
            if sr.dim() != 4 or (sr.shape[0], sr.shape[2], sr.shape[3]) != want:
                raise NasflowError(f"the model turned an LR tile of {ye - ys} x {xe - xs} into "
                                   f"{tuple(sr.shape)}, not x{s}: is its scale {s}?")
            yield ycs, yce, xcs, xce, sr[:, :, (ycs - ys) * s:(yce - ys) * s, (xcs - xs) * s:(xce - xs) * s]
            done += 1
            if progress is not None:
                progress(done, total)


def upscale_tiled(predict: Predict, lr: Tensor, scale: int, tile: int = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP, align: int = DEFAULT_ALIGN,
                  progress: Callable[[int, int], None] | None = None) -> Tensor:
    """The SR image of `lr` (1 x C x H x W) by `predict`, computed tile by tile.

    Returns a float32 CPU tensor 1 x C x H*scale x W*scale (not rounded). Images no larger
    than one tile go through `predict` whole. `progress(done, total)` after each tile.
    For images, upscale_bands / upscale_image hold uint8 output only (4x less memory).
    """
    if lr.dim() != 4 or lr.shape[0] != 1:
        raise NasflowError(f"upscale_tiled takes one image, 1 x C x H x W; got shape {tuple(lr.shape)}")
    _check(scale, tile, overlap, align)
    _, c, h, w = lr.shape
    out: Tensor | None = None
    s = scale
    for y0, y1, x0, x1, core in _cores(predict, lambda ys, ye, xs, xe: lr[:, :, ys:ye, xs:xe],
                                       h, w, scale, tile, overlap, align, progress):
        if out is None:
            out = torch.empty((1, core.shape[1], h * s, w * s), dtype=torch.float32)
        out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = core.float().cpu()
    assert out is not None  # at least one tile
    return out


def upscale_bands(predict: Predict, lr: np.ndarray, scale: int, tile: int = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP, align: int = DEFAULT_ALIGN,
                  progress: Callable[[int, int], None] | None = None) -> Iterator[np.ndarray]:
    """The uint8 SR image of a uint8 H x W x 3 LR image, as horizontal bands top to bottom
    (one per row of tiles, rounded and clamped like MATLAB). Memory: the LR image, one band
    and one tile's activations; never the whole output."""
    if lr.dtype != np.uint8 or lr.ndim != 3:
        raise NasflowError(f"upscale_bands takes a uint8 H x W x C image, got {lr.dtype} {lr.shape}")
    _check(scale, tile, overlap, align)
    h, w, c = lr.shape
    s = scale
    band: np.ndarray | None = None
    band_y = -1
    for y0, y1, x0, x1, core in _cores(predict, lambda ys, ye, xs, xe: to_tensor(lr[ys:ye, xs:xe])[None],
                                       h, w, scale, tile, overlap, align, progress):
        if y0 != band_y:  # a new row of tiles
            if band is not None:
                yield band
            band = np.empty(((y1 - y0) * s, w * s, core.shape[1]), dtype=np.uint8)
            band_y = y0
        assert band is not None
        band[:, x0 * s:x1 * s] = to_image(core.float().cpu())
    assert band is not None  # at least one tile
    yield band


def upscale_image(predict: Predict, lr: np.ndarray, scale: int, tile: int = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP, align: int = DEFAULT_ALIGN,
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """uint8 H x W x 3 LR image -> uint8 SR image, tiled (rounded and clamped like MATLAB).
    Holds the uint8 output and one band of it (upscale_file streams a PNG instead)."""
    out: np.ndarray | None = None
    y = 0
    for band in upscale_bands(predict, lr, scale, tile, overlap, align, progress):
        if out is None:
            out = np.empty((lr.shape[0] * scale, lr.shape[1] * scale, band.shape[2]), dtype=np.uint8)
        out[y:y + band.shape[0]] = band
        y += band.shape[0]
    assert out is not None
    return out


def upscale_file(predict: Predict, lr: np.ndarray, scale: int, dst: Path, tile: int = DEFAULT_TILE,
                 overlap: int = DEFAULT_OVERLAP, align: int = DEFAULT_ALIGN,
                 progress: Callable[[int, int], None] | None = None) -> None:
    """Upscale `lr` into the image file `dst`. A PNG is streamed band by band (peak memory:
    the LR image, one band, one tile: independent of the output's size); other formats are
    assembled as uint8 first (the output's uint8 size more)."""
    if dst.suffix.lower() == ".png" and lr.shape[2] == 3:
        with PngStream(dst, lr.shape[1] * scale, lr.shape[0] * scale) as png:
            for band in upscale_bands(predict, lr, scale, tile, overlap, align, progress):
                png.write(band)
    else:
        save_rgb(upscale_image(predict, lr, scale, tile, overlap, align, progress), dst)
