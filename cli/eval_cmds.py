"""`nasflow eval MODEL`: score a model with its own task (nasflow.deploy.evaluate).

Options the command does not know (`--bench DIR` for SR models) are the task's evaluation
options: `Task.eval_options` declares them, this command passes them on.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional, get_origin

import typer
from rich.table import Table

from nasflow.errors import NasflowError
from nasflow.hardware import BACKEND_HELP

from .app import app, console
from .search_cmds import parse_options


def parse_extra_options(args: list[str], list_fields: set[str]) -> dict[str, Any]:
    """`--bench A --bench B --scale 4` -> {"bench": ["A", "B"], "scale": "4"}: names with
    dashes become underscores; a field in `list_fields` collects repeats; a flag without a
    value is "true"."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or len(token) < 3:
            raise NasflowError(f"unexpected argument '{token}'; nasflow eval takes one MODEL and --options")
        name, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            else:
                value = "true"
        key = name.replace("-", "_")
        if key in list_fields:
            out.setdefault(key, []).append(value)
        elif key in out:
            raise NasflowError(f"--{name} given twice; it takes one value")
        else:
            out[key] = value
        i += 1
    return out


@app.command("eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def eval_(
    ctx: typer.Context,
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL", help="A model directory (nasflow train / import).")],
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1, ... Default: cuda if available.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    backend: Annotated[Optional[str], typer.Option(help=BACKEND_HELP)] = None,
    dtype: Annotated[str, typer.Option(help="fp32, or bf16 (eager / compile; not exact).")] = "fp32",
    task_opt: Annotated[Optional[list[str]], typer.Option(
        "--task-opt", help="Change a task option the model was trained with: key=value.")] = None,
) -> None:
    """Score a model with its task's evaluation, and count its params and Multi-Adds.

    Further --options are the task's evaluation options; the SR task's: --bench FOLDER
    (HR images, repeat for several sets; default: the shipped Set5), --scale S (a check) and
    --tile-memory MIB (activations one image may take, default 1024: larger ones run in tiles;
    the command holds at most --tile-memory plus a 768 MiB base, docs/howto/limits.md).
    """
    from nasflow.deploy.evaluate import evaluate_model, model_task_class

    fields = model_task_class(model_dir).eval_options.model_fields
    lists = {k for k, f in fields.items() if get_origin(f.annotation) is list}
    extra = parse_extra_options(list(ctx.args), lists)
    if backend in (None, "auto") and dtype == "fp32":
        backend = _auto_backend(model_dir, device, quiet=as_json, tile_memory=extra.get("tile_memory"))
    status = console.status(f"evaluating {model_dir}", spinner="dots") if not as_json else None
    if status is not None:
        status.start()
    try:
        result = evaluate_model(model_dir, device=device, backend=backend, dtype=dtype,
                                task_options=parse_options(task_opt), eval_options=extra)
    finally:
        if status is not None:
            status.stop()
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return
    name = result.meta.get("paper_model") or result.space.name
    tables = result.evaluation.tables or [_metrics_table(result.evaluation.metrics)]
    for table in tables:
        if isinstance(table, Table) and table.title:
            table.title = f"{name} on {table.title}"
        console.print(table)
    # The input, not the output: a classifier's output is no image.
    ih, iw = result.cost_input_size
    size = f"a {iw}x{ih} input" if (ih, iw) != (1, 1) else "one sample"
    console.print(f"{name} ({type(result.task).name}): {result.params:,} params, {result.madds / 1e9:.4g}G "
                  f"Multi-Adds for {size}; {result.backend} {result.dtype}")


def _auto_backend(model_dir: Path, device: str | None, quiet: bool, tile_memory: Any = None) -> str:
    """The fastest exact backend on this machine for this model (timed once, cached), timed
    on an input whose activations on every backend at once fit the task's --tile-memory (MiB)
    when it has one (an image model: nasflow/deploy/memory.py)."""
    import torch

    from nasflow.deploy.evaluate import model_task_class
    from nasflow.deploy.memory import (DEFAULT_TILE_MEMORY_MIB, TIMING_SHARE, activation_bytes_per_pixel,
                                       timing_side)
    from nasflow.hardware.auto import exact_backends, pick_backend
    from nasflow.runs.modeldir import load_model

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(model_dir, map_location=dev)[0]
    size = (180, 320)  # pick_backend's default
    graph = getattr(model, "graph", None)
    if graph is not None and "tile_memory" in model_task_class(model_dir).eval_options.model_fields:
        try:
            budget = int(tile_memory or DEFAULT_TILE_MEMORY_MIB) << 20
        except ValueError:
            budget = DEFAULT_TILE_MEMORY_MIB << 20  # the task's options refuse it by name next
        backends = exact_backends(str(dev))
        if size[0] * size[1] * sum(activation_bytes_per_pixel(graph, b) for b in backends) > budget // TIMING_SHARE:
            size = (timing_side(graph, budget, backends),) * 2
    return pick_backend(model, dev, None, size,
                        report=None if quiet else lambda text: console.print(text, highlight=False))


def _metrics_table(metrics: dict[str, float]) -> Table:
    table = Table(title="metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.6g}")
    return table
