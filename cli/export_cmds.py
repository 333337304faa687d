"""`nasflow export`: a model directory as an ONNX file, checked against PyTorch."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nasflow.errors import NasflowError
from nasflow.runs.modeldir import load_model

from .app import app, console


@app.command()
def export(
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL", help="A model directory (nasflow import / train).")],
    onnx: Annotated[Path, typer.Option("--onnx", help="The ONNX file to write.")],
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 17,
    tolerance: Annotated[float, typer.Option(
        help="Largest max-abs difference onnxruntime may show against PyTorch.")] = 1e-2,
) -> None:
    """Export a model to ONNX (input and output names, sample input and dynamic axes from
    its task: batch, height and width for SR) and check that onnxruntime reproduces the
    PyTorch output on an input of another size than the export's."""
    from nasflow.deploy.evaluate import model_task_class
    from nasflow.deploy.onnx import check_onnx, export_onnx

    if onnx.suffix != ".onnx":
        raise NasflowError(f"--onnx '{onnx}' should end in .onnx")
    model, space, _ = load_model(model_dir)
    task = model_task_class(model_dir)
    path = export_onnx(model, onnx, task, opset=opset)
    try:
        diff = check_onnx(model, path, task, tolerance=tolerance)
    except NasflowError:
        path.unlink(missing_ok=True)  # a file that does not reproduce the model is not kept
        raise
    console.print(f"[green]ok[/] {space.name} -> {path}: onnxruntime reproduces PyTorch, "
                  f"max abs difference {diff:.3g} (outputs in the model's range)")
