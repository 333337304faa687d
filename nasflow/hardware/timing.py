"""Timing one module on this machine with one backend: warm-up, repetitions, median and spread.

    with threads(2):
        timing = time_call(Runner("eager").prepare(module, [x]), warmup=2, reps=7)
        timings = time_interleaved({"a": call_a, "b": call_b}, warmup=2, rounds=7)

A Runner turns an nn.Module into a callable on fixed inputs the way inference runs it:
"eager" is the predictor's eager path (channels-last on the CPU, inference mode), "onnx"
exports the module and runs it with onnxruntime, "openvino" runs the same ONNX file with
OpenVINO's CPU plugin (precision hint f32). The timed call includes nothing but the module.

The clock is the wall clock (the latency a user sees), or with `clock="cpu"` the process's
CPU time (all its threads): on a machine shared with other jobs, a call long enough to be
descheduled pays the others' time on the wall clock while a short one often runs through
in one time slice, so whole networks and their nodes are not comparable there; the CPU time
counts the work alone. With one thread it is what an idle machine's wall clock shows; with
more it adds the threads' time (and their spin-waits), so use it with --threads 1.

Things compared with each other (a table's parts against whole networks) are timed
interleaved: round after round, each call once, in an order shuffled per round, so a load
that comes and goes on a shared machine slows all of them alike; each gets the median of
its rounds.
"""
from __future__ import annotations

import contextlib
import random
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

from nasflow.deploy.predictor import DTYPES, keep_inference_memory
from nasflow.errors import NasflowError
from nasflow.search.latency_table import Timing

BACKENDS = ("eager", "onnx", "openvino")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


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
    clock: str = "wall"  # or "cpu": the process's CPU time, for a machine shared with other jobs

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise NasflowError(f"unknown clock '{self.clock}'; choose wall or cpu")
        if self.clock == "cpu" and (self.backend == "openvino" or self.device != "cpu"):
            raise NasflowError("--clock cpu counts this process's CPU time: it cannot see OpenVINO's worker "
                               "process or a GPU; use --clock wall")
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
        if cpu:  # the predictor's eager backend: NHWC on the CPU, freed memory kept for the next call
            keep_inference_memory(device)
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
    return _summary(times)


def time_interleaved(calls: dict[str, Callable[[], object]], warmup: int, rounds: int, seed: int = 0,
                     progress: Callable[[int, int], None] | None = None,
                     clock: Callable[[], float] = time.perf_counter) -> dict[str, Timing]:
    """Median and interquartile range (ms) of each call over `rounds` rounds, each round
    running every call once in a shuffled order, after `warmup` untimed calls of each."""
    if rounds < 1 or warmup < 0:
        raise NasflowError(f"need reps >= 1 and warmup >= 0, got reps={rounds}, warmup={warmup}")
    for _ in range(warmup):
        for call in calls.values():
            call()
    order = list(calls)
    shuffle = random.Random(seed).shuffle
    times: dict[str, list[float]] = {key: [] for key in calls}
    for r in range(rounds):
        if progress is not None:
            progress(r, rounds)
        shuffle(order)
        for key in order:
            start = clock()
            calls[key]()
            times[key].append((clock() - start) * 1e3)
    if progress is not None:
        progress(rounds, rounds)
    return {key: _summary(t) for key, t in times.items()}


def _summary(times: list[float]) -> Timing:
    if len(times) >= 4:
        q = statistics.quantiles(times, n=4)
        spread = q[2] - q[0]
    else:
        spread = max(times) - min(times)
    return Timing(ms=statistics.median(times), spread=max(spread, 0.0))
