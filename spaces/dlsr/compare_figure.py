"""The picture of a Comparison (compare.py): the whole HR image with the box marked, then the
crops side by side, each titled with its name and PSNR / SSIM (matplotlib, nasflow.viz)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from nasflow.viz.mpl import figure, save

from .compare import Comparison

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_CROP_IN = 2.3  # inches per crop panel


def comparison_figure(c: Comparison) -> Figure:
    from matplotlib.patches import Rectangle

    n = len(c.panels)
    rows = 1 if n <= 4 else 2
    cols = math.ceil(n / rows)
    h, w = c.hr.shape[:2]
    full_w = _CROP_IN * rows * w / h  # the whole image as tall as the crop rows
    fig = figure(figsize=(full_w + _CROP_IN * cols, _CROP_IN * rows + 0.9), layout="constrained")
    grid = fig.add_gridspec(rows, cols + 1, width_ratios=[full_w / _CROP_IN] + [1] * cols)
    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(c.hr)
    ax.add_patch(Rectangle((c.box.x - 0.5, c.box.y - 0.5), c.box.w, c.box.h, fill=False, edgecolor="#d62728",
                           linewidth=1.5))
    ax.set_title(f"{c.image} (x{c.scale})", fontsize=9)
    ax.axis("off")
    for i, p in enumerate(c.panels):
        sub = fig.add_subplot(grid[i // cols, 1 + i % cols])
        sub.imshow(p.crop, interpolation="nearest")  # the pixels as they are
        score = "reference" if p.psnr is None else f"{p.psnr:.2f} dB / {p.ssim:.4f}"
        sub.set_title(f"{p.name}\n{score}", fontsize=9)
        sub.set_xticks([])
        sub.set_yticks([])
    fig.suptitle(f"box x={c.box.x} y={c.box.y} w={c.box.w} h={c.box.h}; PSNR / SSIM of the whole image "
                 f"(Y, {c.scale} px shaved)", fontsize=9)
    return fig


def write_comparison(c: Comparison, out: str | Path) -> Path:
    return save(comparison_figure(c), Path(out), svg=False)[0]
