"""This machine's achieved peak, measured: what the benchmarks' speeds are fractions of.

    peak = machine_peak()            # at torch's current thread count; cached per machine
    peak.flops("fp32")               # FLOP/s: the faster of a large matmul and a large dense conv
    peak.triad_bw                    # bytes/s: a = b + s * c on arrays far larger than the caches

Compute: a large square matmul and a large dense 3x3 conv (channels-last, oneDNN's fastest
layout on the CPU) through this torch build at torch.get_num_threads(), in fp32 and, where the
CPU has bf16 arithmetic (avx512_bf16 or amx_bf16), in bf16; each the best of a few runs after
a warm-up (a peak is what the machine *can* do, so the fastest run is the measurement).
Memory: a large copy (read + write) and a STREAM-style triad (two reads, one write).
Timed on the clock the lever choices use (nasflow/hardware/auto.py step_clock): with one
thread the process's CPU time, so other jobs on a shared machine do not lower the peak; with
more, the wall clock.

The result is cached in the lever choices' cache (nasflow/hardware/auto.py: $NASFLOW_CACHE/
choices.json, keyed by the CPU model, the thread count, the torch version and the sizes
measured), so a machine measures it once per thread count.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from nasflow.hardware.auto import _key, _read_cache, _write_cache, fast_bf16, step_clock
from nasflow.search.latency_table import cpu_name


@dataclass(frozen=True)
class PeakSizes:
    """What is measured: big enough to leave the caches and keep the cores busy (defaults), or
    tiny (tests)."""

    matmul: int = 2048  # n of an n x n @ n x n matmul: 17 GFLOP
    conv: tuple[int, int, int] = (8, 128, 64)  # batch, channels in = out, side: 3x3, 9.7 GFLOP
    stream: int = 32 << 20  # floats per array: 128 MiB each, far above any L3
    reps: int = 8  # the best of them: on a shared machine some run without being descheduled


@dataclass(frozen=True)
class Peak:
    """Achieved FLOP/s (a multiply-add is 2 FLOPs) and bytes/s on this machine."""

    matmul_fp32: float
    conv_fp32: float
    copy_bw: float
    triad_bw: float
    threads: int
    machine: str
    matmul_bf16: float | None = None  # None: no bf16 arithmetic on this CPU, not measured
    conv_bf16: float | None = None
    source: str = field(default="measured", compare=False)  # "measured" or "cache"

    def flops(self, dtype: str = "fp32") -> float:
        """The peak FLOP/s for `dtype` ("fp32" or "bf16"): the faster of matmul and conv
        (bf16 falls back to fp32 where it was not measured)."""
        if dtype == "bf16" and self.matmul_bf16 is not None and self.conv_bf16 is not None:
            return max(self.matmul_bf16, self.conv_bf16)
        return max(self.matmul_fp32, self.conv_fp32)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "cache") -> Peak:
        names = {f for f in cls.__dataclass_fields__ if f != "source"}
        return cls(**{k: v for k, v in data.items() if k in names}, source=source)


def _best(fn: Callable[[], Any], reps: int) -> float:
    """The fastest of `reps` calls after one warm-up (oneDNN primitives, page faults), in seconds."""
    fn()
    clock, best = step_clock(), float("inf")
    for _ in range(reps):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return max(best, 1e-9)  # a tiny test size can run within the clock's resolution


def matmul_flops(n: int, dtype: torch.dtype, reps: int) -> float:
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(dtype) for _ in range(2))
    out = torch.empty(n, n, dtype=dtype)
    return 2 * n ** 3 / _best(lambda: torch.mm(a, b, out=out), reps)


def conv_flops(batch: int, channels: int, side: int, dtype: torch.dtype, reps: int) -> float:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, side, side, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    madds = batch * channels * side * side * channels * 9
    with torch.no_grad():
        return 2 * madds / _best(lambda: torch.nn.functional.conv2d(x, w, padding=1), reps)


def stream_bw(n: int, reps: int) -> tuple[float, float]:
    """(copy, triad) bytes/s on fp32 arrays of n floats."""
    a, b, c = torch.zeros(n), torch.ones(n), torch.full((n,), 2.0)  # written: pages are touched
    copy = 2 * 4 * n / _best(lambda: a.copy_(b), reps)
    triad = 3 * 4 * n / _best(lambda: torch.add(b, c, alpha=3.0, out=a), reps)
    return copy, triad


def measure_peak(sizes: PeakSizes = PeakSizes()) -> Peak:
    """Measure now, at torch's current thread count (no cache)."""
    batch, channels, side = sizes.conv
    bf16 = fast_bf16()
    copy, triad = stream_bw(sizes.stream, sizes.reps)
    with torch.inference_mode():
        return Peak(
            matmul_fp32=matmul_flops(sizes.matmul, torch.float32, sizes.reps),
            conv_fp32=conv_flops(batch, channels, side, torch.float32, sizes.reps),
            copy_bw=copy, triad_bw=triad, threads=torch.get_num_threads(), machine=cpu_name(),
            matmul_bf16=matmul_flops(sizes.matmul, torch.bfloat16, sizes.reps) if bf16 else None,
            conv_bf16=conv_flops(batch, channels, side, torch.bfloat16, sizes.reps) if bf16 else None)


def machine_peak(sizes: PeakSizes = PeakSizes(), use_cache: bool = True) -> Peak:
    """This machine's peak at torch's current thread count: from the cache, else measured
    (about 10 s at the default sizes) and cached."""
    key = _key("peak", "cpu", asdict(sizes))
    cached = _read_cache().get(key) if use_cache else None
    if isinstance(cached, dict) and "peak" in cached:
        try:
            return Peak.from_json(cached["peak"])
        except TypeError:  # an entry of another format: measure again
            pass
    peak = measure_peak(sizes)
    _write_cache(key, {"peak": peak.to_json()})
    return peak


def percent(achieved: float, peak: float) -> float:
    """achieved / peak in per cent."""
    return 100.0 * achieved / peak
