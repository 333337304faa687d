"""Seconds per search step of every strategy on the DLSR supernet, as a ratio to the plain
MiLeNAS step (every candidate separately, fp32, NCHW unless told), measured in one run (by
hand, never in tests):

    python bench/strategy_steps.py --threads 1                       # C48, batch 16, HR patch 64
    python bench/strategy_steps.py --threads 1 --layout channels_last   # plain rows in NHWC too
    python bench/strategy_steps.py --channels 16 --batch 4 --patch 32 --steps 2 --json out.json

Every strategy is timed in two setups, each alone in a fresh process (bench/strategy_steps.py
--one NAME --setup S ...): a warm-up step, then `steps` timed ones, on the same seeded
weights, arch and real Set5 patches.

- `plain`: every strategy with the plain mixed op unless it picks its own (pcdarts: partial
  channels over plain candidates, partial-k4), in the memory format `--layout` says, no other
  lever: the ratio is what the strategy itself changes.
- `search`: as `nasflow search` runs it on this CPU, with the search config's defaults: the
  fused mixed op where the strategy uses it (milenas, darts, drnas: fused; pcdarts:
  partial-k4-fused; gdas, spos and darts2 keep the plain op), channels-last, the batches
  moved to it by the wrapped loss, freed memory kept (nasflow.accel.levers). The ratio to
  the same plain MiLeNAS step adds what the levers give.

`--setups plain` times the first alone. `rounds` interleaves repeats, so a machine whose load
changes slows all alike; the figure is the median over every round. Wall and CPU time are
both reported: on a machine shared with other jobs, CPU time waits less on them (use
--threads 1 there: two threads on two busy cores wait on each other). docs/strategies.md has
the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cli_runs import add_medians, add_ratios  # noqa: E402  (bench/, beside this file)

BASELINE = "milenas"
STRATEGIES = ["milenas", "darts", "gdas", "pcdarts", "darts2", "drnas", "spos"]
SETUPS = ["plain", "search"]


def one(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Time `name`'s step in this process, in cfg["setup"] ("plain" or "search")."""
    import torch
    from search_step import real_patches, time_strategy_steps

    from nasflow.accel.levers import keep_freed_memory, prepare_model, to_channels_last, use_channels_last, wrap_loss
    from nasflow.compile.supernet import compile_graph
    from nasflow.search.config import SearchConfig
    from nasflow.space.graph import build_graph
    from nasflow.space.load import load_space
    from nasflow.spaces.dlsr.loss import SRLoss
    from nasflow.strategies import get_strategy

    torch.set_num_threads(cfg["threads"])
    cpu = torch.device("cpu")
    space = load_space(HERE.parent / "spaces" / "dlsr" / "space.yaml", {"channels": cfg["channels"], "scale": cfg["scale"]})
    common = dict(strategy=name, batch_size=cfg["batch"], warmup=0, steps=cfg["steps"] + 1, device="cpu", gamma=0.0)
    if cfg["setup"] == "search":  # the search config's own defaults: fuse, channels-last auto
        config = SearchConfig(**common)
        layout = use_channels_last(config.channels_last, cpu)
    else:
        layout = cfg["layout"] == "channels_last"
        config = SearchConfig(fuse=False, channels_last=layout, **common)
    criterion = SRLoss(0.2)

    def sr_loss(net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        total, terms = criterion(net(batch[0]).float(), batch[1])
        return total, {k: float(v) for k, v in terms.items()}

    lr, hr = real_patches(2 * (cfg["steps"] + 1) * cfg["batch"], cfg["patch"], cfg["scale"], seed=0)
    if cfg["setup"] == "search":  # as the search loop builds it (nasflow/search/loop.py)
        loss = wrap_loss(sr_loss, channels_last=layout, amp=config.amp, device=cpu)
        keep_freed_memory(cpu)
    else:
        loss = sr_loss
        if layout:
            lr, hr = to_channels_last((lr, hr))
    strategy = get_strategy(name)(loss, None, None, None, config)
    torch.manual_seed(0)
    model = prepare_model(compile_graph(build_graph(space), mixed_op=strategy.mixed_op()).train(), layout)
    strategy.attach(model)
    times, cpu_times = time_strategy_steps(strategy, model, lr, hr, cfg["batch"], cfg["steps"])
    return {"times": times, "cpu_times": cpu_times, "mixed_op": strategy.mixed_op(),
            "layout": "channels_last" if layout else "nchw"}


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
                        help="memory format of the plain rows' models and batches (the search rows take the search's own)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--setups", default=",".join(SETUPS),
                        help="plain: the strategy alone; search: with the levers a search uses by default")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--setup", choices=SETUPS, default="plain", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = {k: getattr(args, k) for k in ("batch", "channels", "patch", "scale", "steps", "threads", "layout")}
    if args.one:
        print(json.dumps(one(args.one, {**cfg, "setup": args.setup})))
        return {}
    names = args.strategies.split(",")
    if BASELINE not in names:
        names.insert(0, BASELINE)
    setups = args.setups.split(",")
    if "plain" not in setups:  # the baseline's setup
        setups.insert(0, "plain")
    keys = [(setup, n) for setup in setups for n in names]
    rows: dict[tuple[str, str], dict[str, Any]] = {
        key: {"name": key[1], "setup": key[0], "times": [], "cpu_times": []} for key in keys}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for r in range(args.rounds):
        for setup, name in keys:
            print(f"  round {r + 1} of {args.rounds}: {name} ({setup}) ...", file=sys.stderr, flush=True)
            proc = subprocess.run([sys.executable, __file__, "--one", name, "--setup", setup, *_flags(cfg)],
                                  capture_output=True, text=True, env=env)
            row = rows[setup, name]
            if proc.returncode != 0:
                row["error"] = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                continue
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            row["times"] += got["times"]
            row["cpu_times"] += got["cpu_times"]
            row["mixed_op"], row["layout"] = got["mixed_op"], got["layout"]
    base = rows["plain", BASELINE]
    print(f"\nSearch step per strategy, DLSR supernet: C{args.channels}, batch {args.batch}, HR patch "
          f"{args.patch}, x{args.scale}, {args.threads} threads, median of {args.steps} steps x {args.rounds} rounds")
    print(f"{'strategy':10s} {'setup':7s} {'mixed op':17s} {'layout':14s} {'s/step':>8s} {'vs milenas':>11s} "
          f"{'CPU s':>8s} {'CPU vs':>7s} {'CPU faster':>10s}")
    for row in rows.values():
        if "error" in row:
            print(f"{row['name']:10s} {row['setup']:7s} failed: {row['error']}")
            continue
        add_medians(row)
    for row in rows.values():
        if "error" in row or "error" in base:
            continue
        add_ratios(row, base)
        print(f"{row['name']:10s} {row['setup']:7s} {row['mixed_op']:17s} {row['layout']:14s} {row['s_per_step']:8.3f} "
              f"{row['ratio']:10.3f}x {row['cpu_s_per_step']:8.3f} {row['cpu_ratio']:6.3f}x {1 / row['cpu_ratio']:9.1f}x")
    print("Every ratio is to the plain MiLeNAS step (every candidate, three forward/backward passes): "
          "< 1 is faster. search rows: the levers a search uses by default (fused mixed op where the "
          "strategy takes it, channels-last, kept memory).")
    out = {"args": {**cfg, "rounds": args.rounds, "setups": setups}, "rows": list(rows.values())}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


def _flags(cfg: dict[str, Any]) -> list[str]:
    return [x for k, v in cfg.items() for x in (f"--{k}", str(v))]


if __name__ == "__main__":
    main()
