"""`nasflow compare`, the SR task's side-by-side crops: a thin shell over compare.py and
compare_figure.py, added to the CLI by register (the `nasflow.commands` entry point
dlsr-compare). torch, the images and matplotlib are imported inside the command."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nasflow.errors import NasflowError


def compare(
    models: Annotated[list[Path], typer.Argument(metavar="MODEL...", help="Model directories (nasflow train / import).")],
    image: Annotated[Path, typer.Option(help="An HR image; its LR is made with MATLAB's bicubic.")],
    box: Annotated[str, typer.Option(help="The crop x,y,w,h in HR pixels, e.g. 100,80,64,64.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The PNG to write (default IMAGE-compare.png).")] = None,
    names: Annotated[Optional[str], typer.Option(help="Comma-separated panel names, one per model "
                                                      "(default: the model's paper name or architecture).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, ... Default: cuda if available.")] = None,
) -> None:
    """One picture, as the DLSR paper's Fig. 5: the HR crop, bicubic and each model's output
    at --box, each labelled with the whole image's PSNR / SSIM. Needs matplotlib:
    pip install 'nasflow\\[plot]'."""
    from nasflow.viz.mpl import pyplot

    from .cli import console, load_sr_model
    from .compare import compare_models, parse_box
    from .compare_figure import write_comparison

    pyplot()  # the install hint before any model is loaded
    crop = parse_box(box)
    out = out or image.with_name(f"{image.stem}-compare.png")
    if out.suffix.lower() != ".png":
        raise NasflowError(f"-o '{out}': give a .png file name")
    labels = [n.strip() for n in names.split(",")] if names else None
    if labels is not None and len(labels) != len(models):
        raise NasflowError(f"--names gives {len(labels)} name(s) for {len(models)} model(s); give one per model")
    loaded, scales = [], set()
    for i, path in enumerate(models):
        model, meta, _, scale = load_sr_model(path, device)
        scales.add(scale)
        loaded.append((labels[i] if labels else str(meta.get("paper_model") or meta.get("arch") or path.name), model))
    if len(scales) != 1:
        raise NasflowError(f"the models upscale by different factors ({', '.join(f'x{s}' for s in sorted(scales))}); "
                           "compare models of one scale")
    result = compare_models(loaded, image, crop, scales.pop())
    path = write_comparison(result, out)
    for p in result.panels[1:]:
        console.print(f"{p.name}: {p.psnr:.2f} dB / {p.ssim:.4f}", highlight=False)
    console.print(f"wrote [bold]{path}[/]", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `nasflow compare` to the nasflow CLI (the `nasflow.commands` entry point)."""
    app.command("compare")(compare)
