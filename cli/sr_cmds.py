"""`nasflow import` and `nasflow eval`: bring released SR weights in, and score a model."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import torch
import typer
from rich.table import Table

from nasflow.space.cost import graph_cost, input_size_for_output
from nasflow.errors import NasflowError
from nasflow.space.graph import Graph, build_graph
from nasflow.runs.modeldir import load_model

from .app import app, console

_COST_OUTPUT = (720, 1280)  # (h, w): Multi-Adds are quoted for a 1280x720 output, as in the paper


def load_sr_model(model_dir: Path, device: str | None) -> tuple[torch.nn.Module, Graph, dict[str, Any], str, int]:
    """(model, graph, meta, device, scale) of a model directory, on `device` (default: cuda
    when there is one); the scale is the model's integer upscaling factor."""
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, space, meta = load_model(model_dir, map_location=dev)
    graph = build_graph(space)
    factor = graph.nodes[graph.output].size
    if factor.denominator != 1:
        raise NasflowError(f"model '{space.name}' scales by {factor}, not an integer factor")
    return model, graph, meta, dev, int(factor)


@app.command("import")
def import_(
    checkpoint: Annotated[Path, typer.Argument(help="A released DLSR checkpoint (.pt).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="The model directory to write.")],
    arch: Annotated[Optional[Path], typer.Option(
        help="Architecture file; known released checkpoints default to theirs.")] = None,
    force: Annotated[bool, typer.Option(help="Replace the model already in --out.")] = False,
) -> None:
    """Convert a released checkpoint into a model directory (arch.yaml, weights, meta)."""
    from nasflow.spaces.dlsr.importer import default_arch, import_checkpoint

    path = import_checkpoint(checkpoint, arch if arch is not None else default_arch(checkpoint), out, force=force)
    model, space, meta = load_model(path)
    n = sum(p.numel() for p in model.parameters())
    console.print(f"[green]ok[/] {meta.get('paper_model') or space.name} ({checkpoint.name}) -> {path}: "
                  f"architecture {space.name}, {n:,} params, x{meta.get('scale')}")


@app.command("eval")
def eval_(
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL", help="A model directory (nasflow import / train).")],
    bench: Annotated[Optional[list[Path]], typer.Option(
        help="A folder of HR images; repeat for several sets. Default: the shipped Set5.")] = None,
    scale: Annotated[Optional[int], typer.Option(help="Check the model's scale (it is fixed by its architecture).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1, ... Default: cuda if available.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    backend: Annotated[Optional[str], typer.Option(
        help="plain, eager, compile or onnx (nasflow.deploy.predictor). Default: the fastest exact one "
             "(onnx on the CPU when onnxruntime is installed, else eager).")] = None,
    dtype: Annotated[str, typer.Option(help="fp32, or bf16 (eager / compile; not exact).")] = "fp32",
) -> None:
    """PSNR / SSIM (Y, `scale` pixels shaved, MATLAB bicubic LR) per image and mean, with
    bicubic upscaling for reference, and the model's params and Multi-Adds."""
    from nasflow.deploy.predictor import Predictor, default_backend
    from nasflow.spaces.dlsr.evaluate import default_bench, evaluate_folder

    model, graph, meta, dev, model_scale = load_sr_model(model_dir, device)
    space = graph.space
    if scale is not None and scale != model_scale:
        raise NasflowError(f"model '{space.name}' upscales x{model_scale} (its architecture fixes it), "
                           f"not x{scale}; drop --scale or pass --scale {model_scale}")
    cost = graph_cost(graph, input_size_for_output(graph, _COST_OUTPUT))
    predict = Predictor(model, backend or default_backend(dev), dtype)
    results = []
    for folder in bench or [default_bench()]:
        with console.status(f"evaluating on {folder.name} x{model_scale}", spinner="dots") if not as_json else _null():
            results.append(evaluate_folder(model, folder, model_scale, predict=predict))
    if as_json:
        print(json.dumps({"model": str(model_dir), "arch": space.name, "paper_model": meta.get("paper_model"),
                          "scale": model_scale, "backend": predict.backend, "dtype": dtype,
                          "params": cost.params, "madds": cost.madds,
                          "madds_output_size": [_COST_OUTPUT[1], _COST_OUTPUT[0]],
                          "sets": [r.to_json() for r in results]}, indent=2))
        return
    name = meta.get("paper_model") or space.name
    for r in results:
        table = Table(title=f"{name} on {r.name} x{r.scale}",
                      caption=f"{cost.params:,} params, {cost.madds / 1e9:.2f}G Multi-Adds at 1280x720 output; "
                              f"{predict.backend} {dtype}, {r.seconds:.2f} s")
        for col in ("image", "PSNR", "SSIM", "bicubic PSNR", "bicubic SSIM"):
            table.add_column(col, justify="left" if col == "image" else "right")
        for s in r.images:
            table.add_row(s.name, f"{s.psnr:.2f}", f"{s.ssim:.4f}", _f(s.bicubic_psnr, 2), _f(s.bicubic_ssim, 4))
        table.add_section()
        table.add_row("mean", f"{r.psnr:.2f}", f"{r.ssim:.4f}", _f(r.bicubic_psnr, 2), _f(r.bicubic_ssim, 4),
                      style="bold")
        console.print(table)


def _f(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class _null:
    """A do-nothing context (no spinner when printing JSON)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
