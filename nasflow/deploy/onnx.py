"""ONNX export of a built model (any compiled graph), with the dynamic axes, input and output
names and sample input its task declares, and a check that onnxruntime reproduces the
PyTorch output.

    path = export_onnx(model, "dlsr.onnx", SRTask)
    diff = check_onnx(model, path, SRTask)   # max |onnxruntime - torch|, raises past tolerance
"""
from __future__ import annotations

from collections.abc import Callable

import copy
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from nasflow.errors import NasflowError
from nasflow.runs.durable import write_atomic
from nasflow.tasks.contract import Task, checked_axes, checked_sample

# onnxruntime fuses and reorders convolutions, so its output differs from PyTorch's by float
# rounding: about 2e-3 on DLSR's 0..255 outputs. Anything above this is a wrong graph.
DEFAULT_TOLERANCE = 1e-2


def _require_onnxruntime():  # -> the onnxruntime module
    try:
        import onnxruntime
    except ImportError:
        raise NasflowError("the onnx backend needs onnxruntime: pip install onnxruntime onnx") from None
    return onnxruntime


def _channels(model: nn.Module) -> int:
    graph = getattr(model, "graph", None)
    if graph is None or len(graph.inputs) != 1:
        raise NasflowError("ONNX export takes a built model with one input (a compiled space)")
    if graph.decisions:
        raise NasflowError(f"'{graph.space.name}' is a supernet (it has choices); export a derived "
                           "architecture (nasflow derive, then train or import its weights)")
    return graph.nodes[graph.inputs[0]].c_out


def export_onnx(model: nn.Module, path: str | os.PathLike[str], task: type[Task] | Task = Task,
                opset: int = 17) -> Path:
    """Write `model` (fp32) as ONNX, traced on `task`'s sample input, with its names and
    dynamic axes (the base Task's: N x F feature vectors, a dynamic batch)."""
    out = Path(path)
    channels = _channels(model)
    # Exported from a plain fp32 contiguous copy: the caller's model keeps its format and dtype.
    plain = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format).eval()
    sample = checked_sample(task, task.sample_input(channels, task.export_size, torch.Generator().manual_seed(0)))
    in_axes, out_axes = checked_axes(task, task.dynamic_axes())
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            # The input checks of Supernet.forward are Python conditions the tracer freezes
            # (and warns about); they hold for every input of the right channel count.
            warnings.simplefilter("ignore")
            torch.onnx.export(plain, (sample,), str(tmp), input_names=[task.input_name],
                              output_names=[task.output_name],
                              dynamic_axes={task.input_name: in_axes, task.output_name: out_axes},
                              opset_version=opset, dynamo=False)

    write_atomic(out, write)  # a failed write (a full disk: named) leaves the previous file and no partial one
    return out


def session(path: str | os.PathLike[str], threads: int | None = None):  # -> InferenceSession
    """An onnxruntime CPU session with every graph optimisation on, `threads` intra-op threads
    (default: torch's thread count, so the backends compare on the same cores)."""
    ort = _require_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The memory pattern plans one block for a whole run after the first, while the arena still
    # holds the first run's buffers: a tile's second call doubled the peak (DLSR-S, 736 x 669
    # LR tiles: +570 MB). Without it the arena's buffers are reused, at the same speed.
    options.enable_mem_pattern = False
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise NasflowError(f"onnxruntime cannot load '{path}': {exc}") from None


def run_session(sess, x: Tensor) -> Tensor:  # sess: InferenceSession
    data = np.ascontiguousarray(x.detach().float().cpu().numpy())
    return torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: data})[0])


def check_onnx(model: nn.Module, path: str | os.PathLike[str], task: type[Task] | Task = Task, *,
               size: tuple[int, ...] | None = None, tolerance: float = DEFAULT_TOLERANCE, seed: int = 0) -> float:
    """Max |onnxruntime - PyTorch| on the task's sample input of `size` (the dims after N and
    C; default: the task's check_size) and batch 2; NasflowError when above `tolerance`. Batch
    and size differ from the export's, which tests the dynamic axes."""
    return compare_to_pytorch(model, lambda x: run_session(session(path), x), "onnxruntime", path, task,
                              size=size, tolerance=tolerance, seed=seed)


def compare_to_pytorch(model: nn.Module, run: Callable[[Tensor], Tensor], runtime: str,
                       path: str | os.PathLike[str], task: type[Task] | Task = Task, *,
                       size: tuple[int, ...] | None = None, tolerance: float = DEFAULT_TOLERANCE,
                       seed: int = 0) -> float:
    """Max |run(x) - model(x)| on the task's sample input (batch 2, `size` or the task's
    check_size), the model in plain fp32; NasflowError naming `runtime` when the shapes differ
    or the difference is above `tolerance`. Every exported runtime is checked through here."""
    channels = _channels(model)
    size = task.check_size if size is None else tuple(size)
    x = checked_sample(task, task.sample_input(channels, size, torch.Generator().manual_seed(seed), batch=2))
    plain = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format).eval()
    with torch.inference_mode():
        want = plain(x)
    got = run(x)
    if got.shape != want.shape:
        raise NasflowError(f"{runtime} gives shape {tuple(got.shape)} for a {tuple(x.shape)} input, "
                           f"PyTorch {tuple(want.shape)}: the export of '{path}' is wrong")
    diff = float((got - want).abs().max())
    if not diff <= tolerance:
        raise NasflowError(f"{runtime} does not reproduce the PyTorch output of '{path}': max abs "
                           f"difference {diff:.3g} > tolerance {tolerance:g}")
    return diff
