"""`nasflow upscale`: super-resolve image files with a model directory, tile by tile."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nasflow.errors import NasflowError

from .app import app, console
from .sr_cmds import load_sr_model

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def collect_inputs(inputs: list[Path], out: Path) -> list[tuple[Path, Path]]:
    """(source, destination) per image: a folder's images keep their relative paths under
    OUT; a single input file may be written to OUT itself when OUT names an image file.
    Outputs are PNG (lossless) unless OUT is an image file of another format."""
    from nasflow.spaces.dlsr.data import list_images

    single_file = len(inputs) == 1 and inputs[0].is_file() and out.suffix.lower() in _IMAGE_SUFFIXES
    pairs: list[tuple[Path, Path]] = []
    for item in inputs:
        if not item.exists():
            raise NasflowError(f"input '{item}' does not exist; give image files or folders of images")
        if item.is_dir():
            pairs += [(p, out / p.relative_to(item).with_suffix(".png")) for p in list_images(item)]
        elif single_file:
            pairs.append((item, out))
        else:
            if out.suffix.lower() in _IMAGE_SUFFIXES:
                raise NasflowError(f"-o {out} names one image file, but there are several inputs: "
                                   "give a folder to write them into")
            pairs.append((item, out / (item.stem + ".png")))
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst.resolve() == src.resolve():
            raise NasflowError(f"'{dst}' would overwrite its own input; pick another -o")
        if dst in seen:
            raise NasflowError(f"'{seen[dst]}' and '{src}' would both be written to '{dst}'; "
                               "upscale them into different folders")
        seen[dst] = src
    return pairs


@app.command()
def upscale(
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL", help="A model directory (nasflow import / train).")],
    inputs: Annotated[list[Path], typer.Argument(metavar="IN...", help="Image files or folders of images.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder (or an image file for one input).")],
    tile: Annotated[int, typer.Option(min=1, help="LR tile side in pixels; bounds memory for any image size.")] = 256,
    overlap: Annotated[int, typer.Option(min=0, help="LR pixels each tile reads beyond the part it writes.")] = 32,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1, ... Default: cuda if available.")] = None,
    backend: Annotated[Optional[str], typer.Option(
        help="plain, eager, compile or onnx (nasflow.deploy.predictor). Default: the fastest exact one "
             "(onnx on the CPU when onnxruntime is installed, else eager).")] = None,
    dtype: Annotated[str, typer.Option(help="fp32, or bf16 (eager / compile; not exact).")] = "fp32",
) -> None:
    """Super-resolve images with a model, tiled with overlap (same result as untiled to
    within 0.01 dB); writes PNG files."""
    from nasflow.spaces.dlsr.data import load_rgb
    from nasflow.spaces.dlsr.images import save_rgb
    from nasflow.deploy.predictor import default_backend
    from nasflow.spaces.dlsr.tiling import model_predictor, upscale_image

    model, _, _, dev, scale = load_sr_model(model_dir, device)
    pairs = collect_inputs(inputs, out)
    predict = model_predictor(model, backend or default_backend(dev), dtype)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        job = bar.add_task(f"upscaling x{scale}", total=len(pairs))
        for i, (src, dst) in enumerate(pairs):
            bar.update(job, description=f"x{scale} {src.name}")
            image = load_rgb(src)

            def tiles(done: int, total: int, i: int = i) -> None:
                bar.update(job, completed=i + done / total)

            result = upscale_image(predict, image, scale, tile=tile, overlap=overlap, progress=tiles)
            dst.parent.mkdir(parents=True, exist_ok=True)
            save_rgb(result, dst)
            bar.update(job, completed=i + 1)
    where = pairs[0][1] if len(pairs) == 1 else out
    console.print(f"[green]ok[/] {len(pairs)} image(s) x{scale} -> {where}")
