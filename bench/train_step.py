"""Seconds per training step of a derived model (nasflow train's step), stock PyTorch against
nasflow's levers, each configuration alone in a fresh process (by hand, never in tests):

    python bench/train_step.py --threads 2                    # derived DLSR x2, batch 16, patch 96
    python bench/train_step.py --arch spaces/dlsr/dlsr-div.yaml --patch 64

Rows, each adding one lever to the row above: plain (NCHW fp32, glibc's own malloc
thresholds), + channels_last, + kept freed memory (levers.keep_freed_memory), + fast
depthwise backward (depthwise.use_fast_depthwise). Loss: L1 + 0.2 HFEN on real Set5 patches.
Each row also gives its achieved GFLOP/s (the cost model's FLOPs of a step: forward, input and
kernel gradients) and its share of this machine's measured peak (bench/roofline.py).
`nasflow bench` (bench/speed.py) runs the same rows as its training section.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from child import run_child  # noqa: E402  (each configuration in a child that ends with the bench)

ROWS: list[tuple[str, dict[str, bool]]] = [
    ("plain (NCHW fp32)", dict(channels_last=False, keep_memory=False, fast_depthwise=False)),
    ("+ channels_last", dict(channels_last=True, keep_memory=False, fast_depthwise=False)),
    ("+ keep freed memory", dict(channels_last=True, keep_memory=True, fast_depthwise=False)),
    ("+ fast depthwise  [train default]", dict(channels_last=True, keep_memory=True, fast_depthwise=True)),
]


def one(cfg: dict[str, Any]) -> dict[str, Any]:
    """One configuration in this process: a warm-up step, then cfg["steps"] timed ones."""
    import torch

    from nasflow.accel.depthwise import use_fast_depthwise
    from nasflow.space.graph import build_graph
    from nasflow.accel.levers import keep_freed_memory, prepare_model, to_channels_last
    from nasflow.space.load import load_space
    from nasflow.spaces.dlsr.loss import SRLoss
    from nasflow.compile.supernet import compile_graph
    from search_step import cpu_seconds, real_patches

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    model = prepare_model(compile_graph(build_graph(load_space(cfg["arch"]))), cfg["channels_last"]).train()
    if cfg["keep_memory"]:
        keep_freed_memory(torch.device("cpu"))
    if cfg["fast_depthwise"]:
        use_fast_depthwise(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    criterion = SRLoss(0.2)
    lr, hr = real_patches(cfg["batch"], cfg["patch"], 2, seed=0)
    if cfg["channels_last"]:
        lr, hr = to_channels_last((lr, hr))
    times, cpu_times, losses = [], [], []
    for _ in range(cfg["steps"] + 1):
        start, cpu = time.perf_counter(), cpu_seconds()
        opt.zero_grad(set_to_none=True)
        loss, _ = criterion(model(lr), hr)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
        cpu_times.append(cpu_seconds() - cpu)
        losses.append(float(loss))
    return {"s_per_step": statistics.median(times[1:]), "cpu_s_per_step": statistics.median(cpu_times[1:]),
            "first_loss": losses[0]}


def rows(arch: str, batch: int, patch: int, steps: int, threads: int) -> list[dict[str, Any]]:
    """Every configuration of ROWS, each alone in a fresh process: [{name, s_per_step, first_loss}]."""
    base = {"arch": arch, "batch": batch, "patch": patch, "steps": steps, "threads": threads}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    results = []
    for name, levers in ROWS:
        print(f"  {name} ...", file=sys.stderr, flush=True)
        got, error = run_child([sys.executable, __file__, "--one", json.dumps({**base, **levers})], env)
        results.append({"name": name, "error": error} if got is None else {"name": name, **got})
    return results


def add_rates(results: list[dict[str, Any]], arch: str, batch: int, patch: int, threads: int) -> Any:
    """Each row's achieved GFLOP/s and % of this machine's peak (bench/roofline.py); the peak."""
    import roofline

    peak = roofline.peak(threads)
    flops = roofline.train_step(Path(arch), batch, patch)
    for r in results:
        if "error" not in r:
            r.update(roofline.rate(flops, roofline.seconds(r, "step", threads), peak, "fp32"))
    return peak


def print_train(results: list[dict[str, Any]], arch: str, batch: int, patch: int, threads: int, steps: int,
                peak: Any) -> None:
    import roofline

    print(f"\nTraining step, {Path(arch).name}: batch {batch}, HR patch {patch}, x2, "
          f"{threads} threads, median of {steps} steps")
    print(f"{'configuration':36s} {'s/step':>8s} {'speed-up':>9s} {'CPU s':>7s} {'GFLOP/s':>8s} {'% peak':>7s} "
          f"{'first loss':>12s}")
    plain = results[0].get("s_per_step")
    for r in results:
        if "error" in r:
            print(f"{r['name']:36s} failed: {r['error']}")
            continue
        speed_up = f"{plain / r['s_per_step']:8.2f}x" if plain else f"{'':9s}"
        print(f"{r['name']:36s} {r['s_per_step']:8.3f} {speed_up} {r.get('cpu_s_per_step', float('nan')):7.3f} "
              f"{r['gflops']:8.1f} {r['pct_peak']:6.1f}% "
              f"{r['first_loss']:12.4f}")
    print(roofline.peak_line(peak))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default=str(ROOT / "spaces" / "dlsr" / "dlsr.yaml"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=96, help="HR patch side (x2)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    results = rows(args.arch, args.batch, args.patch, args.steps, args.threads)
    peak = add_rates(results, args.arch, args.batch, args.patch, args.threads)
    print_train(results, args.arch, args.batch, args.patch, args.threads, args.steps, peak)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(one(json.loads(sys.argv[2]))))
    else:
        main()
