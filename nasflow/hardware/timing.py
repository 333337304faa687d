"""Timing one module on this machine with one backend: warm-up, repetitions, median and spread.

    with threads(2):
        timing = time_module(module, [x], Runner("eager", "cpu", "fp32"), warmup=2, reps=7)

A Runner turns an nn.Module into a callable on fixed inputs the way inference runs it:
"eager" is the predictor's eager path (channels-last on the CPU, inference mode), "onnx"
exports the module and runs it with onnxruntime, "openvino" runs the same ONNX file with
OpenVINO's CPU plugin (precision hint f32). The timed call includes nothing but the module.
"""
from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from nasflow.deploy.predictor import DTYPES
from nasflow.errors import NasflowError
from nasflow.search.latency_table import Timing

BACKENDS = ("eager", "onnx", "openvino")


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `n` for the block (None: unchanged)."""
    before = torch.get_num_threads()
    if n is not None:
        if n < 1:
            raise NasflowError(f"--threads must be 1 or more, got {n}")
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Runner:
    backend: str = "eager"
    device: str = "cpu"
    dtype: str = "fp32"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise NasflowError(f"unknown backend '{self.backend}'; choose one of {', '.join(BACKENDS)}")
        if self.dtype not in DTYPES:
            raise NasflowError(f"unknown dtype '{self.dtype}'; choose fp32 or bf16")
        if self.backend != "eager" and (self.device != "cpu" or self.dtype != "fp32"):
            raise NasflowError(f"the {self.backend} backend runs fp32 on the CPU; use --backend eager "
                               f"for {self.device} / {self.dtype}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise NasflowError(f"--device {self.device}: this machine has no CUDA device; use --device cpu")

    def prepare(self, module: nn.Module, inputs: list[Tensor]) -> Callable[[], object]:
        """A call of `module` on `inputs` as this backend runs it."""
        module = module.eval()
        if self.backend == "eager":
            return self._eager(module, inputs)
        with tempfile.TemporaryDirectory() as tmp:
            path = export(module, inputs, Path(tmp) / "probe.onnx")
            if self.backend == "onnx":
                return _onnxruntime(path, inputs)
            return _openvino(path, inputs)

    def _eager(self, module: nn.Module, inputs: list[Tensor]) -> Callable[[], object]:
        dtype, device = DTYPES[self.dtype], torch.device(self.device)
        cpu = device.type == "cpu"
        module = module.to(device=device, dtype=dtype)
        xs = [x.to(device=device, dtype=dtype) for x in inputs]
        if cpu:  # the predictor's eager backend: NHWC on the CPU
            module = module.to(memory_format=torch.channels_last)
            xs = [x.contiguous(memory_format=torch.channels_last) for x in xs]

        def call() -> object:
            with torch.inference_mode():
                y = module(*xs)
            if not cpu:
                torch.cuda.synchronize(device)
            return y

        return call


def export(module: nn.Module, inputs: list[Tensor], path: Path) -> Path:
    """The module as ONNX with inputs x0, x1, ... of these shapes (fp32, NCHW)."""
    names = [f"x{i}" for i in range(len(inputs))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.float().to(memory_format=torch.contiguous_format), tuple(inputs),
                          str(path), input_names=names, output_names=["y"], opset_version=17, dynamo=False)
    return path


def _feeds(inputs: list[Tensor]) -> dict[str, np.ndarray]:
    return {f"x{i}": np.ascontiguousarray(x.detach().float().cpu().numpy()) for i, x in enumerate(inputs)}


def _onnxruntime(path: Path, inputs: list[Tensor]) -> Callable[[], object]:
    from nasflow.deploy.onnx import session

    sess = session(path)
    feeds = _feeds(inputs)
    return lambda: sess.run(None, feeds)


def _openvino(path: Path, inputs: list[Tensor]) -> Callable[[], object]:
    from nasflow.deploy.openvino_backend import compile_model

    compiled = compile_model(path, shapes=[list(x.shape) for x in inputs])
    request = compiled.create_infer_request()
    feeds = _feeds(inputs)
    return lambda: request.infer(feeds)


def time_call(call: Callable[[], object], warmup: int, reps: int) -> Timing:
    """Median and interquartile range (ms) of `reps` calls after `warmup` untimed ones."""
    if reps < 1 or warmup < 0:
        raise NasflowError(f"need reps >= 1 and warmup >= 0, got reps={reps}, warmup={warmup}")
    for _ in range(warmup):
        call()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    if reps >= 4:
        q = statistics.quantiles(times, n=4)
        spread = q[2] - q[0]
    else:
        spread = max(times) - min(times)
    return Timing(ms=statistics.median(times), spread=max(spread, 0.0))
