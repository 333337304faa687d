"""OpenVINO as an inference backend (optional: pip install openvino): the ONNX file that
nasflow exports, compiled by OpenVINO's CPU plugin.

    compiled = compile_model("dlsr.onnx", threads=2)     # f32, LATENCY hint
    diff = check_openvino(model, "dlsr.onnx")            # max |OpenVINO - PyTorch|

The precision hint is set to f32 explicitly: the CPU plugin's default on CPUs with bf16
instructions (Zen4, Sapphire Rapids) is bf16, which is not exact. The model is compiled for
each input shape it sees (static shapes run faster than dynamic ones on the CPU plugin).

The Predictor runs OpenVINO in a worker process of its own (`worker_runner`): once OpenVINO's
runtime (TBB) is loaded, a fork() of the process is no longer safe (a DataLoader worker
forked after it hung in torch's first matmul, or crashed in the dynamic loader), and nasflow
forks DataLoader workers. The worker is spawned, not forked; an image crosses the pipe in
milliseconds, against a second or more of inference for DLSR at 720p.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from nasflow.deploy.onnx import DEFAULT_TOLERANCE, compare_to_pytorch
from nasflow.tasks.contract import Task
from nasflow.errors import NasflowError


def openvino_available() -> bool:
    """Installed? Found without importing it: loading its runtime makes fork() unsafe here."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def _require_openvino():  # -> the openvino module
    try:
        import openvino
    except ImportError:
        raise NasflowError("the openvino backend needs OpenVINO: pip install openvino "
                           "(or pip install 'nasflow[openvino]')") from None
    return openvino


def properties(threads: int | None = None) -> dict[str, str]:
    """f32 precision (never the plugin's bf16 default), LATENCY hint, `threads` (default torch's)."""
    return {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": str(threads or torch.get_num_threads())}


def compile_model(path: str | os.PathLike[str], threads: int | None = None,
                  shapes: list[list[int]] | None = None):  # -> openvino.CompiledModel
    """The ONNX file compiled for the CPU, its inputs reshaped to `shapes` (in order) if given."""
    ov = _require_openvino()
    core = ov.Core()
    try:
        model = core.read_model(str(path))
        if shapes:
            model.reshape({port.get_any_name(): shape for port, shape in zip(model.inputs, shapes)})
        return core.compile_model(model, "CPU", properties(threads))
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
        raise NasflowError(f"OpenVINO cannot compile '{path}': {exc}") from None


def runner(path: str | os.PathLike[str], threads: int | None = None) -> Callable[[Tensor], Tensor]:
    """A callable N x C x ... -> output, compiling `path` once per input shape, in this process."""
    compiled: dict[tuple[int, ...], object] = {}

    def run(x: Tensor) -> Tensor:
        shape = tuple(x.shape)
        if shape not in compiled:
            compiled[shape] = compile_model(path, threads, [list(shape)]).create_infer_request()
        request = compiled[shape]
        data = np.ascontiguousarray(x.detach().float().cpu().numpy())
        out = request.infer({0: data})  # type: ignore[attr-defined]
        return torch.from_numpy(np.array(next(iter(out.values())))).to(x.device)

    return run


def _serve(path: str, threads: int) -> None:
    """The worker's loop (python -m nasflow.deploy.openvino_backend PATH THREADS): pickled
    arrays in on stdin, ("ok", output) or ("error", text) out on stdout, until None."""
    import pickle
    import sys

    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed goes to stderr, never into the pipe
    run = runner(path, threads)
    while True:
        try:
            data = pickle.load(inp)
        except EOFError:  # the calling process ended without saying so
            return
        if data is None:
            return
        try:
            reply = ("ok", run(torch.from_numpy(data)).numpy())
        except Exception as exc:  # reported in the calling process, as one clear error
            reply = ("error", str(exc))
        pickle.dump(reply, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


class worker_runner:
    """A callable like `runner`, running OpenVINO in a worker process of its own (a fresh
    interpreter: neither forked nor multiprocessing's spawn, which re-imports __main__)."""

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        import subprocess
        import sys

        if not openvino_available():
            _require_openvino()  # raises the clear error
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "nasflow.deploy.openvino_backend", str(path), str(threads or torch.get_num_threads()),
             str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __call__(self, x: Tensor) -> Tensor:
        import pickle

        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            pickle.dump(np.ascontiguousarray(x.detach().float().cpu().numpy()), self._proc.stdin,
                        protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
            status, out = pickle.load(self._proc.stdout)
        except (EOFError, BrokenPipeError, ConnectionResetError, pickle.UnpicklingError):
            raise NasflowError("the OpenVINO worker process died (see its message above); run with "
                               "--backend onnx or eager") from None
        if status != "ok":
            raise NasflowError(f"OpenVINO failed: {out}")
        return torch.from_numpy(out).to(x.device)

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                import pickle

                pickle.dump(None, self._proc.stdin)
                self._proc.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass
            try:
                self._proc.wait(timeout=5)
            except Exception:
                self._proc.kill()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def check_openvino(model: nn.Module, path: str | os.PathLike[str], task: type[Task] | Task = Task, *,
                   size: tuple[int, ...] | None = None, tolerance: float = DEFAULT_TOLERANCE, seed: int = 0,
                   threads: int | None = None) -> float:
    """Max |OpenVINO - PyTorch| on the task's sample input, as check_onnx; NasflowError when
    above `tolerance` (a bf16 precision would be caught here)."""
    run = worker_runner(Path(path), threads)
    try:
        return compare_to_pytorch(model, run, "OpenVINO", path, task, size=size, tolerance=tolerance, seed=seed)
    finally:
        run.close()


if __name__ == "__main__":
    import sys

    from nasflow.runs.children import die_with_parent

    die_with_parent(int(sys.argv[3]) if len(sys.argv) > 3 else None)  # not outlive a killed parent
    _serve(sys.argv[1], int(sys.argv[2]))
