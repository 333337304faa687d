"""What `nasflow eval MODEL` shows for an SR model: PSNR / SSIM per image and mean on each
benchmark folder, bicubic upscaling beside it (the SR task's `benchmark` hook)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from nasflow.errors import NasflowError
from nasflow.tasks.contract import Evaluation


class SREvalOptions(BaseModel):
    """`nasflow eval MODEL` options of the SR task."""

    model_config = ConfigDict(extra="forbid")

    bench: list[Path] = []  # folders of HR images, one set each; default: the shipped Set5
    scale: int | None = None  # a check: the model's scale is fixed by its architecture
    # MiB of activations the model may take on one image: a larger one is upscaled in tiles
    # (as nasflow upscale), so memory stays within it plus a fixed base (docs/howto/limits.md)
    tile_memory: int = Field(1024, ge=16)


def benchmark_report(model: nn.Module, predict: Callable[[Tensor], Tensor] | None, scale: int,
                     folders: list[Path], tile_memory: int | None = None) -> Evaluation:
    """Every folder scored; metrics are the set's mean PSNR / SSIM (prefixed by the set's
    name when there are several sets). `tile_memory`: bytes (evaluate.upscale_within)."""
    from .evaluate import evaluate_folder

    for folder in folders:
        if not Path(folder).is_dir():
            raise NasflowError(f"--bench {folder}: no such folder; give a folder of HR images")
    try:
        results = [evaluate_folder(model, folder, scale, predict=predict, tile_memory=tile_memory)
                   for folder in folders]
    except ValueError as exc:  # a model of another scale, say
        raise NasflowError(str(exc)) from None
    metrics: dict[str, float] = {}
    names = [r.name for r in results]
    for r, folder in zip(results, folders):
        # several sets: each one's metrics under its name (its path when two names repeat)
        label = r.name if names.count(r.name) == 1 else str(folder)
        prefix = f"{label}/" if len(results) > 1 else ""
        metrics |= {f"{prefix}psnr": r.psnr, f"{prefix}ssim": r.ssim}
    return Evaluation(metrics, {"scale": scale, "sets": [r.to_json() for r in results]},
                      [_table(r) for r in results])


def _table(r: Any) -> Any:  # BenchResult -> rich Table
    from rich.table import Table

    tiled = [f"{s.name} ({s.tile} px)" for s in r.images if s.tile is not None]
    note = f"; in tiles within --tile-memory: {', '.join(tiled)}" if tiled else ""
    table = Table(title=f"{r.name} x{r.scale}", caption=f"{r.seconds:.2f} s{note}")
    for col in ("image", "PSNR", "SSIM", "bicubic PSNR", "bicubic SSIM"):
        table.add_column(col, justify="left" if col == "image" else "right")
    for s in r.images:
        table.add_row(s.name, f"{s.psnr:.2f}", f"{s.ssim:.4f}", _f(s.bicubic_psnr, 2), _f(s.bicubic_ssim, 4))
    table.add_section()
    table.add_row("mean", f"{r.psnr:.2f}", f"{r.ssim:.4f}", _f(r.bicubic_psnr, 2), _f(r.bicubic_ssim, 4),
                  style="bold")
    return table


def _f(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
