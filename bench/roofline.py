"""The benchmarks' rows as fractions of this machine's measured peak: the FLOPs each row
computes (nasflow/hardware/flops.py, from the cost model) and the peak it is divided by
(nasflow/hardware/peak.py, cached per machine and thread count).

    peak = roofline.peak(threads)                       # measured once per machine, then cached
    flops = roofline.search_step(channels=48, scale=2, patch=64, batch=16, reuse_forward=False)
    row |= roofline.rate(flops, row["s_per_step"], peak, "fp32")   # gflops, pct_peak
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DLSR = ROOT / "spaces" / "dlsr"


def peak(threads: int) -> Any:
    """This machine's Peak at `threads` threads (nasflow.hardware.peak.machine_peak)."""
    import torch

    from nasflow.hardware.peak import machine_peak

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return machine_peak()
    finally:
        torch.set_num_threads(before)


def _graph(path: Path, overrides: dict[str, int]) -> Any:
    from nasflow.space.graph import build_graph
    from nasflow.space.load import load_space

    return build_graph(load_space(path, overrides))


def search_step(channels: int, scale: int, patch: int, batch: int, reuse_forward: bool,
                space: Path = DLSR / "space.yaml") -> int:
    """FLOPs of one MiLeNAS step on the DLSR supernet at an HR `patch` (LR patch / scale)."""
    from nasflow.hardware.flops import step_flops, strategy_passes

    graph = _graph(space, {"channels": channels, "scale": scale})
    side = patch // scale
    return step_flops(graph, (side, side), batch, strategy_passes("milenas", reuse_forward)).total


def train_step(arch: Path, batch: int, patch: int, scale: int = 2) -> int:
    """FLOPs of one training step (forward, input and kernel gradients) of a derived model."""
    from nasflow.hardware.flops import step_flops

    side = patch // scale
    return step_flops(_graph(arch, {}), (side, side), batch, ["weights"]).total


def inference(channels: int, scale: int, size: tuple[int, int], arch: Path = DLSR / "dlsr.yaml") -> int:
    """FLOPs of one inference of derived DLSR on an LR image of `size` (h, w)."""
    from nasflow.hardware.flops import inference_flops

    return inference_flops(_graph(arch, {"channels": channels, "scale": scale}), size)


def seconds(row: dict[str, Any], per: str, threads: int) -> float:
    """A row's seconds per `per` ("step", "image") on the peak's clock: with one thread its CPU
    time (so a shared machine's other jobs do not count), else the wall time."""
    key = f"cpu_s_per_{per}" if threads == 1 and f"cpu_s_per_{per}" in row else f"s_per_{per}"
    return float(row[key])


def rate(flops: int, seconds: float, peak: Any, dtype: str) -> dict[str, float]:
    """{"gflops": achieved GFLOP/s, "pct_peak": per cent of the `dtype` peak}."""
    achieved = flops / seconds
    return {"flops": flops, "gflops": achieved / 1e9, "pct_peak": 100.0 * achieved / peak.flops(dtype)}


def peak_line(peak: Any) -> str:
    bf16 = (f", bf16 {peak.flops('bf16') / 1e9:.0f}" if peak.matmul_bf16 is not None
            else " (bf16: no bf16 arithmetic here, its rows are divided by the fp32 peak)")
    clock = "CPU time, as the rows' GFLOP/s" if peak.threads == 1 else "wall time"
    return (f"% peak: of this machine's measured peak at {peak.threads} threads on {clock} ({peak.source}; "
            f"bench/peak.py): fp32 {peak.flops('fp32') / 1e9:.0f} GFLOP/s{bf16}; "
            f"triad {peak.triad_bw / 1e9:.0f} GB/s.\nGFLOP/s: the cost model's FLOPs of the row "
            "(every candidate, forward and the gradients autograd runs; nasflow/hardware/flops.py) "
            "per second.")
