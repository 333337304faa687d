"""Seconds per search step of every strategy on the DLSR supernet, as a ratio to the plain
MiLeNAS step (every candidate separately, fp32), measured in one run (by hand, never in
tests):

    python bench/strategies.py                                   # C48, batch 16, HR patch 64
    python bench/strategies.py --threads 1 --layout channels_last   # a CPU search's memory format
    python bench/strategies.py --channels 16 --batch 4 --patch 32 --steps 2 --json out.json

Each strategy runs alone in a fresh process (bench/strategies.py --one NAME ...): a warm-up
step, then `steps` timed ones, on the same seeded weights, arch and real Set5 patches, all
in the same memory format (`--layout`, NCHW unless told). Every strategy gets the plain mixed
op unless it picks its own (pcdarts: partial-k4), so the ratio is what the strategy changes,
not the fused kernels. `rounds` interleaves repeats, so a machine whose load changes slows
all alike; the figure is the median over every round. Wall and CPU time are both reported:
on a machine shared with other jobs, CPU time waits less on them (use --threads 1 there:
two threads on two busy cores wait on each other). docs/strategies.md has the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

BASELINE = "milenas"
STRATEGIES = ["milenas", "darts", "gdas", "pcdarts", "darts2", "drnas", "spos"]


def one(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Time `name`'s step in this process."""
    import torch
    from search_step import cpu_seconds, real_patches

    from nasflow.accel.levers import prepare_model, to_channels_last
    from nasflow.compile.supernet import compile_graph
    from nasflow.search.config import SearchConfig
    from nasflow.space.graph import build_graph
    from nasflow.space.load import load_space
    from nasflow.spaces.dlsr.loss import SRLoss
    from nasflow.strategies import get_strategy

    torch.set_num_threads(cfg["threads"])
    space = load_space(HERE.parent / "spaces" / "dlsr" / "space.yaml", {"channels": cfg["channels"], "scale": cfg["scale"]})
    layout = cfg["layout"] == "channels_last"
    config = SearchConfig(strategy=name, fuse=False, channels_last=layout, batch_size=cfg["batch"], warmup=0,
                          steps=cfg["steps"] + 1, device="cpu", gamma=0.0)
    criterion = SRLoss(0.2)

    def sr_loss(net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        total, terms = criterion(net(batch[0]).float(), batch[1])
        return total, {k: float(v) for k, v in terms.items()}

    strategy = get_strategy(name)(sr_loss, None, None, None, config)
    torch.manual_seed(0)
    model = prepare_model(compile_graph(build_graph(space), mixed_op=strategy.mixed_op()).train(), layout)
    strategy.attach(model)
    n, b = cfg["steps"] + 1, cfg["batch"]
    lr, hr = to_channels_last(real_patches(2 * n * b, cfg["patch"], cfg["scale"], seed=0)) if layout else \
        real_patches(2 * n * b, cfg["patch"], cfg["scale"], seed=0)
    batches = [(lr[i:i + b], hr[i:i + b]) for i in range(0, len(lr), b)]
    times, cpu_times = [], []
    for i in range(n):
        strategy.on_step(i, n)
        start, cpu = time.perf_counter(), cpu_seconds()
        strategy.step(model, batches[2 * i], batches[2 * i + 1])
        times.append(time.perf_counter() - start)
        cpu_times.append(cpu_seconds() - cpu)
    return {"times": times[1:], "cpu_times": cpu_times[1:], "mixed_op": strategy.mixed_op()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--channels", type=int, default=48, help="a multiple of 4 (pcdarts' K)")
    parser.add_argument("--patch", type=int, default=64, help="HR patch side")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layout", choices=["nchw", "channels_last"], default="nchw",
                        help="memory format of every strategy's model and batches (a CPU search's default is channels_last)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = {k: getattr(args, k) for k in ("batch", "channels", "patch", "scale", "steps", "threads", "layout")}
    if args.one:
        print(json.dumps(one(args.one, cfg)))
        return {}
    names = args.strategies.split(",")
    if BASELINE not in names:
        names.insert(0, BASELINE)
    rows: dict[str, dict[str, Any]] = {n: {"name": n, "times": [], "cpu_times": []} for n in names}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for r in range(args.rounds):
        for name in names:
            print(f"  round {r + 1} of {args.rounds}: {name} ...", file=sys.stderr, flush=True)
            proc = subprocess.run([sys.executable, __file__, "--one", name, *_flags(cfg)],
                                  capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                rows[name]["error"] = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                continue
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            rows[name]["times"] += got["times"]
            rows[name]["cpu_times"] += got["cpu_times"]
            rows[name]["mixed_op"] = got["mixed_op"]
    base = rows[BASELINE]
    print(f"\nSearch step per strategy, DLSR supernet: C{args.channels}, batch {args.batch}, HR patch "
          f"{args.patch}, x{args.scale}, {args.layout}, {args.threads} threads, median of {args.steps} steps x {args.rounds} rounds")
    print(f"{'strategy':10s} {'mixed op':12s} {'s/step':>8s} {'vs milenas':>11s} {'CPU s':>8s} {'CPU vs':>7s}")
    for row in rows.values():
        if "error" in row:
            print(f"{row['name']:10s} failed: {row['error']}")
            continue
        row["s_per_step"] = statistics.median(row["times"])
        row["cpu_s_per_step"] = statistics.median(row["cpu_times"])
    for row in rows.values():
        if "error" in row or "error" in base:
            continue
        row["ratio"] = row["s_per_step"] / base["s_per_step"]
        row["cpu_ratio"] = row["cpu_s_per_step"] / base["cpu_s_per_step"]
        print(f"{row['name']:10s} {row['mixed_op']:12s} {row['s_per_step']:8.3f} {row['ratio']:10.3f}x "
              f"{row['cpu_s_per_step']:8.3f} {row['cpu_ratio']:6.3f}x")
    print("ratio < 1: faster than the plain MiLeNAS step (every candidate, three forward/backward passes).")
    out = {"args": {**cfg, "rounds": args.rounds}, "rows": list(rows.values())}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


def _flags(cfg: dict[str, Any]) -> list[str]:
    return [x for k, v in cfg.items() for x in (f"--{k}", str(v))]


if __name__ == "__main__":
    main()
