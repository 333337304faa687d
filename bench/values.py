"""Seconds per search step of the DLSR supernet with searched widths, as a ratio to the same
supernet fixed at its largest width, measured in one run (by hand, never in tests):

    python bench/values.py --threads 1                  # C up to 48, batch 16, HR patch 64
    python bench/values.py --threads 1 --batch 4 --patch 32 --steps 2 --json out.json

Rows, each alone in a fresh process (a warm-up step, then `steps` timed ones, on the same
seeded weights and real Set5 patches; `rounds` interleave them, the figure is the median):

- `fixed-48`: spaces/dlsr/space.yaml at channels 48, the MiLeNAS step as `nasflow search`
  runs it (fused mixed op, channels-last): the baseline.
- `widths`: spaces/dlsr/space-width.yaml with channels searched over {16, 24, 32, 48} (ESA's
  inner width fixed at 12, as at 48 channels), the same MiLeNAS step: every weight masked by
  the widths' softmax, one convolution per op at 48. The issue's bar: at most 1.3x.
- `sampled`: the same widths space, the SPOS step (one drawn width per step: only its channels
  run), and `sandwich`: the sandwich step (largest, smallest and 2 random widths in one update).

Both wall and CPU time are reported; on a machine shared with other jobs read the CPU ratio.
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
SPACES = HERE.parent / "spaces" / "dlsr"
ROWS = {"fixed-48": ("milenas", "fixed"), "widths": ("milenas", "widths"), "sampled": ("spos", "widths"),
        "sandwich": ("sandwich", "widths")}
WIDTHS = [16, 24, 32, 48]


def one(row: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Time one row's step in this process."""
    import torch
    from search_step import real_patches, time_strategy_steps

    from nasflow.accel.levers import keep_freed_memory, prepare_model, use_channels_last, wrap_loss
    from nasflow.compile.supernet import compile_graph
    from nasflow.search.config import SearchConfig
    from nasflow.space.graph import build_graph
    from nasflow.space.load import load_space
    from nasflow.spaces.dlsr.loss import SRLoss
    from nasflow.strategies import get_strategy

    torch.set_num_threads(cfg["threads"])
    cpu = torch.device("cpu")
    strategy_name, which = ROWS[row]
    if which == "fixed":
        space = load_space(SPACES / "space.yaml", {"channels": max(WIDTHS), "scale": cfg["scale"]})
    else:
        space = load_space(SPACES / "space-width.yaml", {"scale": cfg["scale"], "esa_f": max(WIDTHS) // 4})
        space = space.model_copy(update={"values": {"channels": WIDTHS}})
    options = {"random": 2} if strategy_name == "sandwich" else {}
    config = SearchConfig(strategy=strategy_name, batch_size=cfg["batch"], warmup=0, steps=cfg["steps"] + 1,
                          device="cpu", gamma=0.0, strategy_options=options)
    layout = use_channels_last(config.channels_last, cpu)
    criterion = SRLoss(0.2)

    def sr_loss(net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        total, terms = criterion(net(batch[0]).float(), batch[1])
        return total, {k: float(v) for k, v in terms.items()}

    lr, hr = real_patches(2 * (cfg["steps"] + 1) * cfg["batch"], cfg["patch"], cfg["scale"], seed=0)
    loss = wrap_loss(sr_loss, channels_last=layout, amp=config.amp, device=cpu)
    keep_freed_memory(cpu)
    strategy = get_strategy(strategy_name)(loss, None, None, None, config)
    torch.manual_seed(0)
    model = prepare_model(compile_graph(build_graph(space), mixed_op=strategy.mixed_op()).train(), layout)
    strategy.attach(model)
    times, cpu_times = time_strategy_steps(strategy, model, lr, hr, cfg["batch"], cfg["steps"])
    return {"times": times, "cpu_times": cpu_times, "mixed_op": strategy.mixed_op()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=64, help="HR patch side")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = {k: getattr(args, k) for k in ("batch", "patch", "scale", "steps", "threads")}
    if args.one:
        print(json.dumps(one(args.one, cfg)))
        return {}
    names = args.rows.split(",")
    if "fixed-48" not in names:
        names.insert(0, "fixed-48")
    rows: dict[str, dict[str, Any]] = {n: {"row": n, "times": [], "cpu_times": []} for n in names}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for r in range(args.rounds):
        for name in names:
            print(f"  round {r + 1} of {args.rounds}: {name} ...", file=sys.stderr, flush=True)
            flags = [x for k, v in cfg.items() for x in (f"--{k}", str(v))]
            proc = subprocess.run([sys.executable, __file__, "--one", name, *flags], capture_output=True, text=True,
                                  env=env)
            if proc.returncode != 0:
                rows[name]["error"] = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                continue
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            rows[name]["times"] += got["times"]
            rows[name]["cpu_times"] += got["cpu_times"]
    base = rows["fixed-48"]
    load = os.getloadavg()[0]
    print(f"\nDLSR search step with searched widths {WIDTHS} vs fixed at {max(WIDTHS)}: batch {args.batch}, HR patch "
          f"{args.patch}, x{args.scale}, {args.threads} thread(s), median of {args.steps} steps x {args.rounds} "
          f"rounds, load {load:.1f}")
    print(f"{'row':10s} {'strategy':9s} {'s/step':>8s} {'vs fixed':>9s} {'CPU s':>8s} {'CPU vs':>7s}")
    for name, row in rows.items():
        if "error" in row or "error" in base:
            print(f"{name:10s} failed: {row.get('error') or base.get('error')}")
            continue
        add_medians(row)
    for name, row in rows.items():
        if "s_per_step" not in row or "s_per_step" not in base:
            continue
        add_ratios(row, base)
        print(f"{name:10s} {ROWS[name][0]:9s} {row['s_per_step']:8.3f} {row['ratio']:8.3f}x "
              f"{row['cpu_s_per_step']:8.3f} {row['cpu_ratio']:6.3f}x")
    print("widths: the MiLeNAS step with every weight masked by the widths' softmax (bar: <= 1.3x fixed-48); "
          "sampled: one drawn width per step (SPOS); sandwich: largest + smallest + 2 random widths per step.")
    out = {"args": {**cfg, "rounds": args.rounds, "load": load}, "rows": list(rows.values())}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
