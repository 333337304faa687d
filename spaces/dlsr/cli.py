"""The SR task's commands: `nasflow import` (released DLSR checkpoints into model
directories), `nasflow upscale` (super-resolve image files, tile by tile) and `nasflow
prepare-data` (decode a training folder into the decoded-image store); `nasflow compare`
is compare_cmd.py's, an entry point of its own.

Found by the CLI through the `nasflow.commands` entry-point group (pyproject.toml): each
entry point is a function `register(app: typer.Typer)`. torch and the image code are
imported inside the commands, so listing the commands stays fast.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from nasflow.errors import NasflowError
from nasflow.hardware import BACKEND_HELP
from nasflow.viz.console import console  # the CLI's: plain into a pipe or with NO_COLOR

if TYPE_CHECKING:
    import torch

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def load_sr_model(model_dir: Path, device: str | None) -> tuple[torch.nn.Module, dict[str, Any], str, int]:
    """(model, meta, device, scale) of a model directory, on `device` (default: cuda when
    there is one); the scale is the model's integer upscaling factor."""
    import torch

    from nasflow.runs.modeldir import load_model
    from nasflow.space.graph import build_graph

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, space, meta = load_model(model_dir, map_location=dev)
    graph = build_graph(space)
    factor = graph.nodes[graph.output].size
    if factor.denominator != 1 or graph.nodes[graph.output].c_out != graph.nodes[graph.inputs[0]].c_out:
        raise NasflowError(f"model '{space.name}' scales images by {factor}, not an integer factor with "
                           "as many channels out as in: it is not an SR model")
    return model, meta, dev, int(factor)


def collect_inputs(inputs: list[Path], out: Path) -> list[tuple[Path, Path]]:
    """(source, destination) per image: a folder's images keep their relative paths under
    OUT; a single input file may be written to OUT itself when OUT names an image file.
    Outputs are PNG (lossless) unless OUT is an image file of another format."""
    from .data import list_images

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


def import_(
    checkpoint: Annotated[Path, typer.Argument(help="A released DLSR checkpoint (.pt).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="The model directory to write.")],
    arch: Annotated[Optional[Path], typer.Option(
        help="Architecture file; known released checkpoints default to theirs.")] = None,
    force: Annotated[bool, typer.Option(help="Replace the model already in --out.")] = False,
) -> None:
    """Convert a released DLSR checkpoint into a model directory (arch.yaml, weights, meta)."""
    from nasflow.runs.modeldir import load_model

    from .importer import default_arch, import_checkpoint

    path = import_checkpoint(checkpoint, arch if arch is not None else default_arch(checkpoint), out, force=force)
    model, space, meta = load_model(path)
    n = sum(p.numel() for p in model.parameters())
    console.print(f"[green]ok[/] {meta.get('paper_model') or space.name} ({checkpoint.name}) -> {path}: "
                  f"architecture {space.name}, {n:,} params, x{meta.get('scale')}")


def upscale(
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL", help="A model directory (nasflow import / train).")],
    inputs: Annotated[list[Path], typer.Argument(metavar="IN...", help="Image files or folders of images.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder (or an image file for one input).")],
    tile: Annotated[Optional[int], typer.Option(min=1, help="LR tile side in pixels, at most the largest "
                                                "whose activations fit --tile-memory (the default).")] = None,
    tile_memory: Annotated[int, typer.Option(min=16, help="MiB of activations one tile may take (estimated for "
                                             "the backend from the model's layers): picks the tile size. The command holds at "
                                             "most this plus a 768 MiB base.")] = 1024,
    overlap: Annotated[int, typer.Option(min=0, help="LR pixels each tile reads beyond the part it writes.")] = 32,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1, ... Default: cuda if available.")] = None,
    backend: Annotated[Optional[str], typer.Option(help=BACKEND_HELP)] = None,
    dtype: Annotated[str, typer.Option(help="fp32, or bf16 (eager / compile; not exact).")] = "fp32",
) -> None:
    """Super-resolve images with a model, tiled with overlap (same result as untiled to
    within 0.01 dB); writes PNG files."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from nasflow.hardware.auto import exact_backends, pick_backend

    from nasflow.deploy.input_size import check_input_size
    from nasflow.deploy.memory import check_tile, timing_side

    from .data import image_size, load_rgb
    from .tiling import model_predictor, tile_for_memory, upscale_file

    model, _, dev, scale = load_sr_model(model_dir, device)
    pairs = collect_inputs(inputs, out)
    sizes: list[tuple[int, int]] = []
    for src, _ in pairs:  # before timing backends or writing: each header's size (limits, receptive field)
        w, h = image_size(src)
        check_input_size(model, h, w, f"image {src} ({w} x {h})", "upscale a larger image")
        sizes.append((h, w))
    guess = tile or tile_for_memory(model.graph, tile_memory << 20, overlap)  # the eager bound: the largest
    # Backends are timed on one tile, all alive at once: together within --tile-memory too.
    side = timing_side(model.graph, tile_memory << 20, exact_backends(str(dev)), largest=guess)
    chosen = pick_backend(model, dev, backend, dtype, (side,) * 2,
                          report=lambda text: console.print(text, highlight=False))
    if tile is None:  # larger tiles recompute less overlap: as large as the backend's memory allows
        tile = tile_for_memory(model.graph, tile_memory << 20, overlap, backend=chosen)
    else:  # a tile by hand within --tile-memory too (a named backend was not timed: nothing ran yet)
        for shape in sizes:
            check_tile(model.graph, tile, tile_memory << 20, chosen, overlap, shape)
    predict = model_predictor(model, chosen, dtype)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        job = bar.add_task(f"upscaling x{scale}", total=len(pairs))
        for i, (src, dst) in enumerate(pairs):
            bar.update(job, description=f"x{scale} {src.name}")
            image = load_rgb(src)

            def tiles(done: int, total: int, i: int = i) -> None:
                bar.update(job, completed=i + done / total)

            dst.parent.mkdir(parents=True, exist_ok=True)
            upscale_file(predict, image, scale, dst, tile=tile, overlap=overlap, progress=tiles)
            bar.update(job, completed=i + 1)
    where = pairs[0][1] if len(pairs) == 1 else out
    console.print(f"[green]ok[/] {len(pairs)} image(s) x{scale} -> {where}")


def prepare_data(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="Folder of HR training images (searched recursively).")],
    scale: Annotated[list[int], typer.Option(help="Upscaling factor to prepare LR images for; repeat for several.")],
    cache: Annotated[Optional[Path], typer.Option(
        help="Store folder, the sr task option `cache` (default: $NASFLOW_CACHE or ~/.cache/nasflow/lr).")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Processes decoding in parallel (default: every core).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Decode every image once into the on-disk store that search and train memory-map
    (`--task-opt store=disk`, or any folder over 256 MB decoded). Resumable: images already
    stored are skipped, changed ones redone."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .data import default_cache_dir
    from .data_store import prepare_folder

    with Progress(TextColumn("preparing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=as_json) as bar:
        job = bar.add_task("images", total=None)
        reports = prepare_folder(folder, scale, cache, workers,
                                 lambda done, total: bar.update(job, completed=done, total=total))
    store = (cache or default_cache_dir()).expanduser()
    scales = list(dict.fromkeys(scale))
    if as_json:
        console.print_json(json.dumps([{"scale": s, "images": r.images, "written": r.written,
                                        "disk_bytes": r.disk_bytes, "seconds": round(r.seconds, 3),
                                        "store": str(store)} for s, r in zip(scales, reports)]))
        return
    for s, r in zip(scales, reports):
        console.print(f"[green]ok[/] x{s}: {r.images} images in {store} ({r.written} decoded now, "
                      f"{r.images - r.written} already there), {r.disk_bytes / 1e9:.2f} GB on disk, "
                      f"{r.seconds:.1f} s", soft_wrap=True)
    if cache is not None:
        console.print(f"train or search with --task-opt cache={store} to read this store", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the SR task's commands to the nasflow CLI (the `nasflow.commands` entry point)."""
    app.command("import")(import_)
    app.command("upscale")(upscale)
    app.command("prepare-data")(prepare_data)
