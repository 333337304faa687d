"""Fast inference for built (derived) models: a Predictor is a callable Tensor -> Tensor.

    predict = Predictor(model, backend="onnx")     # or "eager", "compile", "plain"
    y = predict(x)                                  # a batch N x C x ... in, float32 out

Backends, all fp32 by default and equal to the plain path up to float rounding:
- "plain":   the model as built, NCHW fp32 eager, under inference_mode (the reference).
- "eager":   channels-last memory format, inference_mode: oneDNN's convolutions (the
             depthwise ones above all) run about twice as fast in NHWC on the CPU.
- "compile": torch.compile (inductor, with weight freezing, so conv + activation are fused
             into one oneDNN call) of the eager model; compiles once per input size.
- "onnx":    the model exported to ONNX (cached on disk, keyed by architecture and weights)
             and run by onnxruntime, whose graph optimiser fuses conv + activation and runs
             convolutions in a blocked layout.
- "openvino": the same ONNX file run by OpenVINO's CPU plugin (optional: pip install
             openvino), precision hint f32, checked against PyTorch when built
             (nasflow/deploy/openvino_backend.py).
`dtype="bf16"` (eager and compile only) runs the model in bfloat16: faster where the CPU has
bf16 instructions, not exact (bench/speed.py reports the PSNR change).
"""
from __future__ import annotations

import copy
import errno
import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from nasflow.accel.levers import keep_freed_memory
from nasflow.errors import NasflowError
from nasflow.tasks.contract import Task, task_class_for

BACKENDS = ("plain", "eager", "compile", "onnx", "openvino")


def keep_inference_memory(device: torch.device) -> bool:
    """Eager inference on the CPU keeps the memory a call frees for the next (glibc's malloc
    thresholds raised, nasflow/accel/levers.py, as search and training do): every node's
    output is fresh memory, and with the default thresholds each was page-faulted in, zeroed,
    ~80k faults a call and over half the CPU time of DLSR x2 C16 at 320x180 on one thread."""
    return keep_freed_memory(device)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def default_cache_dir() -> Path:
    """Exported ONNX files: $NASFLOW_CACHE/onnx if set, else ~/.cache/nasflow/onnx."""
    env = os.environ.get("NASFLOW_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "nasflow") / "onnx"


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def default_backend(device: torch.device | str = "cpu") -> str:
    """The fastest exact backend (bench/speed.py): onnxruntime on the CPU when installed."""
    if torch.device(device).type != "cpu":
        return "eager"
    return "onnx" if onnx_available() else "eager"


def model_key(model: nn.Module) -> str:
    """A hash of the architecture and every tensor of the state dict: the ONNX cache key."""
    h = hashlib.sha256()
    graph = getattr(model, "graph", None)
    h.update((graph.space.to_yaml() if graph is not None else type(model).__name__).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


class Predictor:
    """`predictor(x)`: the model's output for a batch x (N x C x H x W images, N x C feature
    vectors, ...), as float32 on x's device.

    The model is copied, never changed. Inputs may come in any dtype or memory format.
    """

    def __init__(self, model: nn.Module, backend: str = "eager", dtype: str = "fp32",
                 cache_dir: str | os.PathLike[str] | None = None, threads: int | None = None,
                 task: type[Task] | Task | None = None) -> None:
        if backend not in BACKENDS:
            raise NasflowError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
        if dtype not in DTYPES:
            raise NasflowError(f"unknown dtype '{dtype}'; choose fp32 or bf16")
        if dtype == "bf16" and backend in ("plain", "onnx", "openvino"):
            raise NasflowError(f"dtype bf16 runs with the eager or compile backend, not '{backend}'")
        self.backend, self.dtype = backend, dtype
        self.device = next((p.device for p in model.parameters()), torch.device("cpu"))
        if backend in ("onnx", "openvino") and self.device.type != "cpu":
            raise NasflowError(f"the {backend} backend runs on the CPU; the model is on {self.device}")
        self.onnx_path: Path | None = None
        graph = getattr(model, "graph", None)
        # The task says what an input looks like (for the ONNX export); default: the model's.
        self.task = task if task is not None else task_class_for(graph.space if graph is not None else None)
        self.channels = graph.nodes[graph.inputs[0]].c_out if graph is not None and len(graph.inputs) == 1 else None
        self._run = self._build(model.eval(), cache_dir, threads)

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or (self.channels is not None and x.shape[1] != self.channels):
            raise NasflowError(f"a predictor takes batches N x C x ... with C = {self.channels or 'the input width'} "
                               f"(N x C x H x W for images, N x C for feature vectors), got shape {tuple(x.shape)}")
        return self._run(x)

    def __repr__(self) -> str:
        return f"Predictor(backend={self.backend!r}, dtype={self.dtype!r})"

    # --- backends -----------------------------------------------------------------------------
    def _build(self, model: nn.Module, cache_dir: str | os.PathLike[str] | None,
               threads: int | None) -> Callable[[Tensor], Tensor]:
        if self.backend == "onnx":
            return self._onnx(model, Path(cache_dir) if cache_dir else default_cache_dir(), threads)
        if self.backend == "openvino":
            return self._openvino(model, Path(cache_dir) if cache_dir else default_cache_dir(), threads)
        dtype = DTYPES[self.dtype]
        net = copy.deepcopy(model).to(dtype=dtype)
        if self.backend == "plain":
            return self._eager(net, dtype, channels_last=False)
        channels_last = self.device.type == "cpu"
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
            keep_inference_memory(self.device)
        if self.backend == "compile":
            net = _compiled(net)
        return self._eager(net, dtype, channels_last)

    def _eager(self, net: Callable[[Tensor], Tensor], dtype: torch.dtype,
               channels_last: bool) -> Callable[[Tensor], Tensor]:
        def run(x: Tensor) -> Tensor:
            x = x.to(device=self.device, dtype=dtype)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                y = net(x)
            return y.float().contiguous()

        return run

    def _onnx(self, model: nn.Module, cache_dir: Path, threads: int | None) -> Callable[[Tensor], Tensor]:
        from nasflow.deploy.onnx import run_session, session

        path = self._exported(model, cache_dir)
        sess = session(path, threads)
        return lambda x: run_session(sess, x).to(x.device)

    def _openvino(self, model: nn.Module, cache_dir: Path, threads: int | None) -> Callable[[Tensor], Tensor]:
        from nasflow.deploy.openvino_backend import check_openvino, worker_runner

        path = self._exported(model, cache_dir)
        check_openvino(model, path, self.task, threads=threads)  # the exactness check the onnx export gets
        return worker_runner(path, threads)  # its own process: OpenVINO makes fork() unsafe

    def _exported(self, model: nn.Module, cache_dir: Path) -> Path:
        from nasflow.deploy.onnx import export_onnx

        path = cache_dir / f"{model_key(model)}.onnx"
        if not path.is_file():
            try:
                export_onnx(model, path, self.task)
            except OSError as exc:
                fix = ("free some space, or set NASFLOW_CACHE to a folder on another disk"
                       if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "set NASFLOW_CACHE to a writable folder")
                raise NasflowError(f"cannot write the ONNX cache in {cache_dir} ({exc}): {fix}") from None
        self.onnx_path = path
        return path


def _import_mkldnn_quietly() -> None:
    """Import torch.utils.mkldnn now, with its one known warning silenced. Inductor's pre-grad
    passes import it on the first compiled call, and its class bodies use the deprecated
    torch.jit.script_method (torch's code, not ours): 14 DeprecationWarnings per process that
    no nasflow code can act on. Importing it here first, under a filter that matches only
    that message, makes inductor's later import a cache hit."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script_method` is deprecated",
                                category=DeprecationWarning)
        import torch.utils.mkldnn  # noqa: F401


def _compiled(net: nn.Module) -> Callable[[Tensor], Tensor]:
    """torch.compile with inductor's weight freezing (constant weights let it fold layout
    changes and fuse conv + activation); a missing C++ compiler fails on the first call."""
    import torch._inductor.config as inductor_config

    _import_mkldnn_quietly()
    compiled = torch.compile(net)

    def run(x: Tensor) -> Tensor:
        with inductor_config.patch(freezing=True):
            return compiled(x)

    return run
