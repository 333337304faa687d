"""Side-by-side crops, as the DLSR paper's Fig. 5: the HR crop, bicubic and each model's output.

    result = compare_models([("DLSR", model)], "Set14/barbara.png", Box(100, 80, 64, 64), scale=2)
    result.panels[2].crop, result.panels[2].psnr

The image goes through the evaluation's conventions (spaces/dlsr/evaluate.py): the HR is
cropped to a multiple of the scale, its LR made with MATLAB's bicubic, each model run on
the whole LR image; PSNR / SSIM are the whole image's (Y, `scale` pixels shaved), what
`nasflow eval` reports for it. The box is in HR pixels; the crops are the rounded outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from torch import nn

from nasflow.deploy.input_size import check_input_size
from nasflow.errors import NasflowError

from .data import PathLike, load_rgb, make_lr
from .evaluate import Predict, bicubic_upscale, upscale
from .images import to_image
from .metrics import mod_crop, psnr, ssim


class Box(NamedTuple):
    x: int
    y: int
    w: int
    h: int

    def take(self, img: np.ndarray) -> np.ndarray:
        return img[self.y:self.y + self.h, self.x:self.x + self.w]


def parse_box(text: str) -> Box:
    """'x,y,w,h' in HR pixels (x, y: the top-left corner)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or values[0] < 0 or values[1] < 0 or values[2] < 1 or values[3] < 1:
        raise NasflowError(f"--box '{text}' must be x,y,w,h in HR pixels: four whole numbers, x and y >= 0, "
                           "w and h >= 1, e.g. --box 100,80,64,64")
    return Box(*values)


@dataclass
class Panel:
    name: str
    crop: np.ndarray  # uint8 h x w x 3
    psnr: float | None = None  # whole image, Y, shaved; None for the HR itself
    ssim: float | None = None


@dataclass
class Comparison:
    image: str
    scale: int
    box: Box
    hr: np.ndarray  # the whole (mod-cropped) HR image
    panels: list[Panel]


def compare_models(models: list[tuple[str, nn.Module]], image: PathLike, box: Box, scale: int,
                   predicts: list[Predict | None] | None = None) -> Comparison:
    """HR crop, bicubic crop and each model's crop of `image` (HR) at `box`, with PSNR / SSIM."""
    hr = mod_crop(load_rgb(image), scale)
    h, w = hr.shape[:2]
    if box.x + box.w > w or box.y + box.h > h:
        raise NasflowError(f"--box {box.x},{box.y},{box.w},{box.h} reaches past the image "
                           f"'{Path(image).name}' ({w} x {h} after cropping to a multiple of x{scale}); "
                           "pick a box inside it")
    lr = make_lr(hr, scale)
    bic = bicubic_upscale(lr, scale)
    panels = [Panel("HR", box.take(hr)),
              Panel("bicubic", box.take(bic), psnr(bic, hr, crop_border=scale), ssim(bic, hr, crop_border=scale))]
    for i, (name, model) in enumerate(models):
        model.eval()
        check_input_size(model, lr.shape[0], lr.shape[1], f"the LR of image '{Path(image).name}' "
                         f"({lr.shape[1]} x {lr.shape[0]}, x{scale}) for model '{name}'", "compare on a larger image")
        sr = upscale(model, lr, predicts[i] if predicts else None)
        if tuple(sr.shape[1:]) != (h, w):
            raise NasflowError(f"model '{name}' gives {sr.shape[2]} x {sr.shape[1]} for an LR of "
                               f"{lr.shape[1]} x {lr.shape[0]}, not the HR's {w} x {h}: is it a x{scale} model?")
        panels.append(Panel(name, box.take(to_image(sr)), psnr(sr, hr, crop_border=scale),
                            ssim(sr, hr, crop_border=scale)))
    return Comparison(Path(image).name, scale, box, hr, panels)
