"""Evaluate an SR model on benchmark folders, with the conventions of the SR literature.

For each HR image: crop it to a multiple of the scale, make its LR with MATLAB's bicubic
imresize, run the model on the whole LR image (batch 1, RGB floats in 0..255), round and
clamp the output, and score PSNR / SSIM on Y with `scale` pixels shaved from each border.
With `tile_memory` (bytes; `nasflow eval --tile-memory`, 1024 MiB by default) an image whose
activations would take more is upscaled in tiles that fit (tiling.py: within about 0.01 dB
of the whole image; the score records the tile), and a folder is read one image at a time,
so memory is bounded by the budget, not by the images (docs/howto/limits.md).
The bicubic-upscaling baseline goes through the same data and metric code, so the two
columns of a report differ only by the model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from nasflow.deploy.input_size import check_input_size

from .bicubic import imresize_uint8
from .data import BenchImage, LRCache, PathLike, Progress, image_size, list_images, load_pair
from .images import to_tensor
from .metrics import psnr, ssim

DATA_DIR = Path(__file__).resolve().parent / "data"


def default_bench() -> Path:
    """Set5 (HR), shipped with the package so `nasflow eval` works with no data at hand."""
    return DATA_DIR / "Set5"


@dataclass(frozen=True)
class ImageScore:
    name: str
    psnr: float
    ssim: float
    bicubic_psnr: float | None = None
    bicubic_ssim: float | None = None
    seconds: float = 0.0  # model time on this image
    tile: int | None = None  # the LR tile side when the image was upscaled in tiles (tile_memory)


@dataclass
class BenchResult:
    """Scores of one model on one benchmark set at one scale."""

    name: str
    scale: int
    images: list[ImageScore] = field(default_factory=list)

    @property
    def psnr(self) -> float:
        return fmean(s.psnr for s in self.images)

    @property
    def ssim(self) -> float:
        return fmean(s.ssim for s in self.images)

    @property
    def bicubic_psnr(self) -> float | None:
        vals = [s.bicubic_psnr for s in self.images if s.bicubic_psnr is not None]
        return fmean(vals) if vals else None

    @property
    def bicubic_ssim(self) -> float | None:
        vals = [s.bicubic_ssim for s in self.images if s.bicubic_ssim is not None]
        return fmean(vals) if vals else None

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.images)

    def to_json(self) -> dict[str, Any]:
        return {"set": self.name, "scale": self.scale, "psnr": self.psnr, "ssim": self.ssim,
                "bicubic_psnr": self.bicubic_psnr, "bicubic_ssim": self.bicubic_ssim,
                "seconds": self.seconds, "images": [vars(s) for s in self.images]}


def _device(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(iter(model.parameters()), None)
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)


Predict = Callable[[torch.Tensor], torch.Tensor]  # N x C x H x W -> N x C x sH x sW, e.g. a Predictor


def upscale(model: nn.Module, lr: np.ndarray, predict: Predict | None = None) -> torch.Tensor:
    """The model's output for one uint8 H x W x 3 LR image: float C x H' x W' on the CPU,
    not yet rounded (the metrics round and clamp). `predict` (nasflow.deploy.predictor.Predictor,
    say) replaces the model's own forward when given."""
    if predict is not None:
        return predict(to_tensor(lr)[None])[0].float().cpu()
    device, dtype = _device(model)
    x = to_tensor(lr)[None].to(device=device, dtype=dtype)
    if device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        y = model(x)
    return y[0].float().cpu()


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """The baseline: MATLAB bicubic upscaling of a uint8 LR image, as uint8."""
    return imresize_uint8(lr, float(scale), size=(lr.shape[0] * scale, lr.shape[1] * scale))


def tile_within(model: nn.Module, lr: np.ndarray, predict: Predict | None, tile_memory: int | None) -> int | None:
    """The LR tile side to upscale `lr` with when its whole-image activations (estimated for
    the predictor's backend) exceed `tile_memory` bytes; None: run it whole."""
    graph = getattr(model, "graph", None)
    if tile_memory is None or graph is None:
        return None
    from nasflow.deploy.memory import activation_bytes_per_pixel, tile_for_memory

    from .tiling import DEFAULT_OVERLAP

    backend = getattr(predict, "backend", "eager")  # a plain callable: eager's (larger) estimate
    if lr.shape[0] * lr.shape[1] * activation_bytes_per_pixel(graph, backend) <= tile_memory:
        return None
    return tile_for_memory(graph, tile_memory, DEFAULT_OVERLAP, backend=backend)


def upscale_within(model: nn.Module, lr: np.ndarray, scale: int, predict: Predict | None,
                   tile_memory: int | None) -> tuple[torch.Tensor, int | None]:
    """(SR C x H' x W', tile or None): upscale() whole, or in tiles when the image's
    activations exceed `tile_memory`, then rounded to uint8 already (the metrics round the
    same way), a quarter of the float output's memory."""
    tile = tile_within(model, lr, predict, tile_memory)
    if tile is None:
        return upscale(model, lr, predict), None
    from .tiling import DEFAULT_OVERLAP, model_predictor, upscale_image

    run = predict if predict is not None else model_predictor(model, "eager")
    return torch.from_numpy(upscale_image(run, lr, scale, tile, DEFAULT_OVERLAP)).permute(2, 0, 1), tile


def score_image(model: nn.Module, image: BenchImage, scale: int, bicubic: bool = True,
                predict: Predict | None = None, tile_memory: int | None = None) -> ImageScore:
    start = time.perf_counter()
    sr, tile = upscale_within(model, image.lr, scale, predict, tile_memory)
    seconds = time.perf_counter() - start
    hr_shape = (image.hr.shape[2], image.hr.shape[0], image.hr.shape[1])
    if tuple(sr.shape) != hr_shape:
        raise ValueError(f"{image.name}: the model gives {tuple(sr.shape)} (C x H x W) for an LR of "
                         f"{image.lr.shape[0]} x {image.lr.shape[1]}, but the HR is {hr_shape}: "
                         f"is the model's scale {scale}?")
    score = {"psnr": psnr(sr, image.hr, crop_border=scale), "ssim": ssim(sr, image.hr, crop_border=scale)}
    if bicubic:
        bic = bicubic_upscale(image.lr, scale)
        score |= {"bicubic_psnr": psnr(bic, image.hr, crop_border=scale),
                  "bicubic_ssim": ssim(bic, image.hr, crop_border=scale)}
    return ImageScore(image.name, seconds=seconds, tile=tile, **score)


def evaluate_images(model: nn.Module, images: list[BenchImage], scale: int, name: str = "images",
                    bicubic: bool = True, progress: Progress | None = None,
                    predict: Predict | None = None, tile_memory: int | None = None) -> BenchResult:
    """Score already loaded (HR, LR) pairs; the model is put in eval mode. `predict`, when
    given, computes the outputs instead of the model (nasflow.deploy.predictor.Predictor).

    On the CPU the model is also moved to channels-last memory format: convolutions run about
    twice as fast (measured on DLSR), and outputs agree to float rounding (1e-6 dB).
    """
    for image in images:  # before any is scored (an onnxruntime MaxPool error otherwise, mid-run)
        _check_lr_size(model, image.name, name, image.lr.shape[0], image.lr.shape[1], scale)
    return _score_all(model, images, len(images), scale, name, bicubic, progress, predict, tile_memory)


def _check_lr_size(model: nn.Module, image: str, name: str, h: int, w: int, scale: int) -> None:
    check_input_size(model, h, w, f"the LR of image '{image}' of {name} ({w} x {h}, x{scale})",
                     "remove it from the folder")


def _score_all(model: nn.Module, images: Iterable[BenchImage], n: int, scale: int, name: str, bicubic: bool,
               progress: Progress | None, predict: Predict | None, tile_memory: int | None) -> BenchResult:
    model.eval()
    if _device(model)[0].type == "cpu":
        model.to(memory_format=torch.channels_last)
    result = BenchResult(name, scale)
    for i, image in enumerate(images):
        result.images.append(score_image(model, image, scale, bicubic, predict, tile_memory))
        if progress is not None:
            progress(i + 1, n)
    return result


def evaluate_folder(model: nn.Module, folder: PathLike, scale: int, *, bicubic: bool = True,
                    cache: LRCache | None = None, progress: Progress | None = None,
                    predict: Predict | None = None, tile_memory: int | None = None) -> BenchResult:
    """Score `model` on every image of a folder of HR images (the set is named by the folder),
    loading one image at a time; every LR's size is checked from the headers first."""
    root = Path(folder).expanduser()
    paths = list_images(root)
    name = Path(folder).name
    names = [p.relative_to(root).with_suffix("").as_posix() for p in paths]
    for path, label in zip(paths, names):
        w, h = image_size(path)
        if w >= scale and h >= scale:  # smaller: load_pair names it (no whole LR pixel)
            _check_lr_size(model, label, name, h // scale, w // scale, scale)
    images = (BenchImage(label, *load_pair(path, scale, cache)) for path, label in zip(paths, names))
    return _score_all(model, images, len(paths), scale, name, bicubic, progress, predict, tile_memory)
